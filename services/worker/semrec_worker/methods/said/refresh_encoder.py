"""The `said` refresh encoder: SAID prefixes for new items only, mapped into a stage-2 run's item space.

A stage-2 run (`semrec train seqrec --init <SAID run>`) initialised its item layer from SAID's table
(methods/said/model.py eq. 4, backbones/item_embedding.py):

    u_i = f_theta(i) flattened (K x width, or the K vectors' mean)     SAID stage 1, frozen LM
    z_i = PCA(u_i) / s                                                 `--projection pca` (no PCA if widths match)
        or   u_i / s, then a trained linear map                        `--projection linear`
    e_i = the stage-2 trained row (fine-tuned from z_i unless --freeze-items)
    v_i = serving(e_i)                                                 as `semrec export onnx`

For a new item, `encode`:

1. builds its prefix with the SAID trainer's own projector over the item's caption (the frozen LM's token
   embeddings): the amortised projector gives u = c + MLP(c) with no training (its MLP is the trained one,
   frozen); optionally `row_epochs` passes of eq. 3 train the new items' own rows (sparse, per item;
   existing items' rows are never touched: they are not even loaded);
2. applies the stage-2 PCA and scale saved at training time (never refitted);
3. maps z -> e with W, b: for `--projection linear` the trained linear layer itself (exact); for PCA init
   a ridge least-squares map fitted from the existing items' z to their trained e — with the amortised
   projector, z as refresh computes it (the projector's output for the caption, not the stored row, which
   carries per-item training), so the in-sample cosine in `encoder.json` is what the catalogue's own items
   get from this encoder;
4. applies the serving transform.

Existing items keep their trained vectors (the refresh job never re-encodes unchanged items): their SAID
rows carry trained residuals a new item cannot have, so this encoder does not reproduce them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from semrec.cli_builder import echo
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec.serving_space import ServingSpace

from semrec_worker.core.reduction import PCAFit
from semrec_worker.data.dataset import load_dataset
from semrec_worker.data.records import Item
from semrec_worker.data.text import CaptionView
from semrec_worker.methods.said.settings import TrainSAIDConfig
from semrec_worker.refresh.encoders import (
    read_encoder,
    ridge_map,
    save_run_encoder,
    serving_space_of_run,
    write_encoder,
)
from semrec_worker.training.config import load_seqrec_config

if TYPE_CHECKING:
    from semrec_worker.training.trainer import FinishedRun

MLP_PREFIX = "mlp."


@dataclass
class _NewItems:
    """What `SAIDTrainer` reads from a dataset, for a list of items to embed."""

    items: list[Item]
    item_ids: list[str] = field(init=False)
    n_items: int = field(init=False)
    name: str = "refresh"
    fingerprint: str = "refresh"

    def __post_init__(self) -> None:
        self.item_ids = [i.item_id for i in self.items]
        self.n_items = len(self.items)


class SAIDItemEncoder:
    kind = "said"

    def __init__(self, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.pca = PCAFit.from_arrays(self.arrays) if "pca_mean" in self.arrays else None
        self.row_epochs = int(spec.get("row_epochs", 0))
        # the SAID trainer's captions: the run's caption fields (a token cap only shortens them)
        self.text_view = CaptionView(tuple(spec["said_config"].get("caption_fields", ["title", "brand"])))
        self.serving = ServingSpace.from_dict(spec)
        self.progress = True
        self._lm = None

    # ---- building ------------------------------------------------------------------------------------
    @classmethod
    def from_stage2(cls, run_dir: Path, config, dataset, model, item_table: ItemTable, table: ItemTable,
                    said_dir: Path) -> SAIDItemEncoder:
        """From a finished stage-2 run: its config (SeqRecConfig), dataset, model, trained table, SAID table."""
        # torch only when an encoder is built or used: loading one (publish, refresh's diff) stays torch-free
        import torch

        from semrec_worker.backbones.item_embedding import table_reduction, unit_mean_norm

        if not (said_dir / "config.json").exists() or not (said_dir / "checkpoint.pt").exists():
            raise UserError(f"{said_dir}: the SAID run's config.json / checkpoint.pt are needed to embed new items")
        said_config = TrainSAIDConfig.load(said_dir)
        projector = str(table.metadata.get("projector", said_config.projector))
        arrays: dict[str, np.ndarray] = {}
        if projector == "amortised":
            state = torch.load(said_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["projector"]
            arrays.update({k: v.float().numpy() for k, v in state.items() if k.startswith(MLP_PREFIX)})
        rows, missing = table.aligned(dataset.item_ids)
        missing_set = set(missing)
        known = np.array([i not in missing_set for i in dataset.item_ids], dtype=bool)
        targets = item_table.vectors[known]
        if config.projection == "linear":
            z = unit_mean_norm(rows[known])
            arrays["scale"] = np.array(float(np.linalg.norm(rows[known], axis=1).mean()))
            linear = model.item_embedding.linear
            weights = linear.weight.detach().float().cpu().numpy().T
            bias = linear.bias.detach().float().cpu().numpy()
            how = "trained linear layer (exact)"
        else:
            z, pca, scale = table_reduction(rows[known], config.dim, config.init_start == "whitened")
            if pca is not None:
                arrays.update(pca.arrays())
            arrays["scale"] = np.array(scale)
            how = "ridge map from the init rows to the trained rows"
            if projector == "amortised":
                # fit on what refresh computes for an item (the projector's output for its caption), not on the
                # stored rows, which carry per-item training a new item never gets
                probe = cls({"said_config": said_config.to_dict(), "projector": projector, "row_epochs": 0,
                             **serving_space_of_run(run_dir, item_table.vectors)}, arrays)
                probe.progress = False
                known_items = [item for item, k in zip(dataset.items, known, strict=True) if k]
                u = probe.said_vectors(known_items)
                z = (u if pca is None else pca.transform(u)) / scale
                how = "ridge map from the projector's output for each caption to the trained rows"
            weights, bias = ridge_map(z, targets)
        arrays["map_weight"], arrays["map_bias"] = weights.astype(np.float32), bias.astype(np.float32)
        serving = serving_space_of_run(run_dir, item_table.vectors)
        space = ServingSpace.from_dict(serving)
        predicted, actual = space.apply(z @ weights + bias), space.apply(targets)
        fit_cosine = float(np.mean(np.sum(predicted * actual, axis=1)))
        spec = {
            "kind": cls.kind,
            "said_run": str(said_dir.resolve()),
            "said_config": said_config.to_dict(),
            "projector": projector,
            "lm": said_config.llm,
            "row_epochs": 0 if projector == "amortised" else 3,
            "projection": config.projection,
            "map": how,
            "fit_items": int(known.sum()),
            "fit_cosine": round(fit_cosine, 4),
            **serving,
        }
        return cls(spec, arrays)

    @staticmethod
    def built_for(run_config: dict[str, Any]) -> bool:
        """Whether a run's saved config is one this encoder is built for (a seqrec run initialised from SAID)."""
        return said_source(str(run_config.get("init", "random"))) is not None

    @classmethod
    def rebuild(cls, run: Path, state: dict[str, Any], item_table: ItemTable) -> Path | None:
        """`semrec export refresh-encoder`: the encoder of a finished SAID-initialised run, from its saved files."""
        import torch  # torch only when an encoder is built

        seqrec = load_seqrec_config(run)
        dataset = load_dataset(seqrec)
        linear = None
        if seqrec.projection == "linear":
            weight = state["item_embedding.linear.weight"]
            linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
            linear.load_state_dict({"weight": weight, "bias": state["item_embedding.linear.bias"]})
        model = SimpleNamespace(item_embedding=SimpleNamespace(linear=linear))
        return save_stage2_encoder(run, seqrec, dataset, model, item_table)

    # ---- encoding ------------------------------------------------------------------------------------
    def said_vectors(self, items: list[Item]) -> np.ndarray:
        """The new items' SAID table rows (prefixes flattened or averaged as the SAID run's table)."""
        import torch  # torch only when new items are encoded (see above)

        from semrec_worker.methods.said import model as said
        from semrec_worker.methods.said.trainer import SAIDTrainer

        overrides = {"projector": self.spec["projector"], "max_items": None, "resume_from": None, "only_new": False,
                     "device": "auto", "out": None, "threads": None}
        config = TrainSAIDConfig.model_validate({**self.spec["said_config"], **overrides})
        trainer = SAIDTrainer(config, Path("."), _NewItems(list(items)), self._lm)
        self._lm = trainer.lm
        mlp = {k.removeprefix(MLP_PREFIX): torch.as_tensor(v) for k, v in self.arrays.items() if k.startswith(MLP_PREFIX)}
        trainer.adopt_shared(mlp)
        if self.row_epochs:
            from tqdm.auto import tqdm

            batches = [b for epoch in range(self.row_epochs) for b in trainer.epoch_batches(epoch)]
            for batch in tqdm(batches, desc="said rows (new items)", unit="batch", disable=not self.progress):
                trainer.step(batch)
        return said.prefixes_for_table(trainer.projector, len(items), config.table_vectors).numpy()

    def encode(self, items: list[Item]) -> np.ndarray:
        if not items:
            return np.zeros((0, self.spec["dim"]), np.float32)
        u = self.said_vectors(items)
        z = (u if self.pca is None else self.pca.transform(u)) / float(self.arrays["scale"])
        e = z @ self.arrays["map_weight"] + self.arrays["map_bias"]
        return self.serving.apply(e)

    # ---- persistence ---------------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        return write_encoder(directory, {**self.spec, "row_epochs": self.row_epochs}, self.arrays)

    @classmethod
    def load(cls, directory: Path) -> SAIDItemEncoder:
        return cls(*read_encoder(directory))


def said_source(init: str) -> tuple[ItemTable, Path] | None:
    """The SAID table and run dir behind `--init`, or None when the init is not a SAID table."""
    path = Path(init).expanduser()
    if init == "random" or not path.exists():
        return None
    table = ItemTable.load(path)
    if table.metadata.get("method") != "said":
        return None
    return table, (path if path.is_dir() else path.parent)


def save_stage2_encoder(run_dir: Path, config, dataset, model, item_table: ItemTable) -> Path | None:
    """Save a SAID-initialised stage-2 run's `said` refresh encoder (nothing for other inits); a run it cannot
    be built for is reported, not failed."""
    source = said_source(config.init)
    if source is None:
        return None
    saved = save_run_encoder(run_dir, SAIDItemEncoder.kind, lambda: SAIDItemEncoder.from_stage2(
        Path(run_dir), config, dataset, model, item_table, *source))
    if saved is None:
        return None
    encoder, path = saved
    echo(f"refresh encoder (said: {encoder.spec['projector']} projector -> {encoder.spec['map']}; in-sample "
         f"cosine to the trained vectors {encoder.spec['fit_cosine']:.3f}) saved to {path}")
    return path


def after_stage2(run: FinishedRun) -> Path | None:
    """SAID's stage-2 hook (method registry): the `said` refresh encoder of a SAID-initialised seqrec run."""
    return save_stage2_encoder(run.run_dir, run.config, run.dataset, run.model, run.item_table)
