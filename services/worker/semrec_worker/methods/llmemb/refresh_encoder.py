"""The `llmemb` refresh encoder: new items through the same path LLMEmb's trained items took.

For a `semrec train llmemb-rat` run the served item vector of item i is (methods/llmemb/model.py, eqs. 4 and 6):

    x_i = mean_t h_L(p_i)_t                    SCFT-tuned LM (base + LoRA), masked mean over the prompt p_i (eq. 3)
    x_i <- PCA_scft(x_i)                       only when the SCFT run used --dim
    z_i = PCA_rat(x_i) / s                     the RAT PCA to d_m, s = mean row norm of the trained items' z
    e_i = W_2 (W_1 z_i + b_1) + b_2            the trained adapter (the item vector IS the adapter output:
                                               RAT has no per-item ID embedding, so nothing is lost for new items)
    v_i = serving(e_i)                         e / |e| (cosine runs), or the MIPS augmentation (dot runs)

`LLMEmbItemEncoder` stores every piece (LM name, a copy of the LoRA adapter, both PCAs' mean/components, s,
the adapter's weights, the serving transform's similarity and max norm) in RUN_DIR/refresh_encoder/, so a
refresh reproduces the trained vectors of existing items (up to batching and bf16 noise) and gives new items
vectors in the same space. The PCAs are fixed at training time: new items are projected, never refitted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from semrec.cli_builder import echo
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec.serving_space import ServingSpace

from semrec_worker.core.reduction import PCAFit
from semrec_worker.core.runtime import Precision, precision_of
from semrec_worker.data.dataset import load_dataset
from semrec_worker.data.records import Item
from semrec_worker.data.text import DOMAINS, PromptView
from semrec_worker.lm.backends import TransformersBackend
from semrec_worker.lm.loader import LanguageModel, load_language_model
from semrec_worker.methods.llmemb.settings import TrainRATConfig
from semrec_worker.refresh.encoders import read_encoder, save_run_encoder, serving_space_of_run, write_encoder

LORA_DIR = "lora"


def spec_precision(spec: dict[str, Any]) -> Precision:
    """The encoder's precision; an encoder.json saved before `precision` has the boolean `bf16` (None = auto)."""
    return spec["precision"] if "precision" in spec else precision_of(spec.get("bf16"))


class LLMEmbItemEncoder:
    kind = "llmemb"

    def __init__(self, spec: dict[str, Any], arrays: dict[str, np.ndarray], lora_dir: Path | None) -> None:
        self.spec = spec
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.lora_dir = lora_dir
        self.scft_pca = PCAFit.from_arrays(self.arrays, "scft_pca_") if "scft_pca_mean" in self.arrays else None
        self.rat_pca = PCAFit.from_arrays(self.arrays, "rat_pca_")
        self.text_view = PromptView(spec["domain"], spec["max_value_chars"])  # every attribute, values cut
        self.serving = ServingSpace.from_dict(spec)
        self.progress = True
        self._backend = None

    # ---- building ------------------------------------------------------------------------------------
    @classmethod
    def from_rat(cls, run_dir: Path, scft_source: str | Path, scft_table: ItemTable, adapter, item_table: ItemTable):
        """From a finished RAT run: its SCFT table/run, the trained `LLMEmbAdapter` and item table."""
        meta = scft_table.metadata
        source = Path(scft_source)
        scft_dir = source if source.is_dir() else source.parent
        if meta.get("method") != "llmemb" or "lm" not in meta or "settings" not in meta:
            raise UserError(f"{scft_source}: not an item table of `semrec train llmemb` (its LM and settings are "
                            "not recorded), so new items cannot be embedded the same way")
        if adapter.pca is None:
            raise UserError("the RAT adapter does not record its PCA (built without LLMEmbAdapter.from_table)")
        settings = meta["settings"]
        recorded = Path(str(meta.get("adapter") or "adapter"))  # "adapter" (the run's own) or a --adapter path
        candidates = [recorded] if recorded.is_absolute() else [scft_dir / recorded, recorded]
        lora = next((c for c in candidates if (c / "adapter_config.json").exists()), None)
        if lora is None:
            raise UserError(f"{candidates[0]}: the SCFT LoRA adapter is not there (needed to embed new items)")
        arrays = {**adapter.pca.arrays("rat_pca_"), "rat_scale": np.array(adapter.scale)}
        if settings.get("dim") is not None:
            pca_file = scft_dir / str(meta.get("pca_file", "scft_pca.npz"))
            if not pca_file.exists():
                raise UserError(f"{pca_file}: the SCFT table was PCA'd (--dim) but its PCA was not saved "
                                "(re-run `semrec train llmemb --adapter ...` to save it)")
            with np.load(pca_file) as data:
                arrays.update({f"scft_{k}": data[k] for k in data.files})
        for name, value in adapter.project.state_dict().items():
            arrays[f"adapter.{name}"] = value.detach().float().cpu().numpy()
        domain = settings.get("domain") or _domain(str(meta.get("dataset", "")))
        spec = {
            "kind": cls.kind,
            "lm": meta["lm"],
            "domain": domain,
            "max_value_chars": settings.get("max_value_chars", 100),
            "max_prompt_tokens": settings.get("max_prompt_tokens", 128),
            "embed_batch_size": settings.get("embed_batch_size", 32),
            "precision": settings.get("precision") or precision_of(settings.get("bf16")),
            "scft_source": str(source.resolve()),
            "item_vector": "adapter output (RAT has no per-item ID part)",
            **serving_space_of_run(run_dir, item_table.vectors),
        }
        return cls(spec, arrays, lora)

    @staticmethod
    def built_for(run_config: dict[str, Any]) -> bool:
        """Whether a run's saved config is one this encoder is built for (a RAT run: it names its SCFT table)."""
        return "scft" in run_config

    @classmethod
    def rebuild(cls, run: Path, state: dict[str, Any], item_table: ItemTable) -> Path | None:
        """`semrec export refresh-encoder`: the encoder of a finished RAT run, from its saved files."""
        from semrec_worker.methods.llmemb.model import LLMEmbAdapter  # torch only when an encoder is built

        config = TrainRATConfig.load(run, out=run)
        rat = config.rat
        dataset = load_dataset(config.seqrec.dataset)
        scft_table = ItemTable.load(rat.scft)
        adapter = LLMEmbAdapter.from_table(scft_table, dataset, width=config.seqrec.model.dim, d_m=rat.d_m)
        prefix = "item_embedding.project."
        adapter.project.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
        return save_rat_encoder(run, rat.scft, scft_table, adapter, item_table)

    # ---- encoding ------------------------------------------------------------------------------------
    def prompts(self, items: list[Item]) -> list[str]:
        return [self.text_view.text(item) for item in items]

    def backend(self):
        if self._backend is None:
            lm = load_language_model(self.spec["lm"])
            model = lm.model
            if self.lora_dir is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.lora_dir))
            self._backend = TransformersBackend(
                LanguageModel(model.eval(), lm.tokenizer, lm.name), "mean", self.spec["embed_batch_size"],
                self.spec["max_prompt_tokens"], spec_precision(self.spec), None, self.progress,
            )
        return self._backend

    def adapter_output(self, lm_vectors: np.ndarray) -> np.ndarray:
        """LM embeddings -> PCA(s) -> / s -> W_2 (W_1 z + b_1) + b_2 (model space, float32)."""
        x = lm_vectors if self.scft_pca is None else self.scft_pca.transform(lm_vectors)
        z = (self.rat_pca.transform(x) / float(self.arrays["rat_scale"])).astype(np.float32)
        a = self.arrays
        hidden = z @ a["adapter.0.weight"].T + a["adapter.0.bias"]
        return hidden @ a["adapter.1.weight"].T + a["adapter.1.bias"]

    def encode(self, items: list[Item]) -> np.ndarray:
        if not items:
            return np.zeros((0, self.spec["dim"]), np.float32)
        lm_vectors = self.backend().embed(self.prompts(items))
        return self.serving.apply(self.adapter_output(lm_vectors))

    # ---- persistence ---------------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.lora_dir is not None and Path(self.lora_dir).resolve() != (directory / LORA_DIR).resolve():
            shutil.rmtree(directory / LORA_DIR, ignore_errors=True)
            shutil.copytree(self.lora_dir, directory / LORA_DIR)
        return write_encoder(directory, {**self.spec, "lora": LORA_DIR if self.lora_dir is not None else None},
                             self.arrays)

    @classmethod
    def load(cls, directory: Path) -> LLMEmbItemEncoder:
        directory = Path(directory)
        spec, arrays = read_encoder(directory)
        lora = directory / spec["lora"] if spec.get("lora") else None
        return cls(spec, arrays, lora)


def _domain(dataset_name: str) -> str:
    return DOMAINS.get(dataset_name, dataset_name)


def save_rat_encoder(run_dir: Path, scft_source, scft_table: ItemTable, adapter, item_table: ItemTable) -> Path | None:
    """Save the run's `llmemb` refresh encoder; a run it cannot be built for is reported, not failed."""
    saved = save_run_encoder(run_dir, LLMEmbItemEncoder.kind, lambda: LLMEmbItemEncoder.from_rat(
        Path(run_dir), scft_source, scft_table, adapter, item_table))
    if saved is None:
        return None
    encoder, path = saved
    echo(f"refresh encoder (llmemb: LM {encoder.spec['lm']} + LoRA -> PCA -> adapter) saved to {path}")
    return path
