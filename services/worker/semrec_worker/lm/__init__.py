"""Language models: loading (local HF directories, the packaged SmolLM2 GGUF, tiny test models)."""

from semrec_worker.lm.loader import LanguageModel, load_language_model, tiny_llama

__all__ = ["LanguageModel", "load_language_model", "tiny_llama"]
