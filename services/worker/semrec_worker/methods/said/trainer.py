"""The SAID stage-1 training loop: length-bucketed batches, bf16 autocast, sparse row updates, a progress bar,
checkpoints (resume mid-epoch), generation accuracy per epoch with early stop, and the item-table export.

Run directory layout: config.json, checkpoint.pt, metrics.json, accuracy.png, generation_examples.md,
item_table.npz, train.log (when run from the CLI in the background), and with --snapshot-tables snapshots/
(the table at step 0 and at every evaluation: `semrec_worker.methods.said.snapshots`).

Data parallel (`torchrun --nproc-per-node G -m semrec_worker.methods.said.trainer --config cfg.json`, or the CLI
under torchrun): items are sharded by row (row % world == rank), so each per-item row is owned by one rank
and never needs synchronising during an epoch; only the amortised projector's MLP gradients are averaged.
Rows are gathered to every rank before evaluation and checkpoints; rank 0 writes the files.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from semrec.cli_builder import echo
from semrec.errors import UserError
from semrec.item_table import ItemTable, utc_now

from semrec_worker.core.runtime import autocast, resolve_device, resolve_precision
from semrec_worker.data.dataset import SequenceDataset, load_dataset
from semrec_worker.lm import LanguageModel, load_language_model
from semrec_worker.methods.said import model as said
from semrec_worker.methods.said.batches import TokenizedCaptions, length_buckets, tokenize_captions
from semrec_worker.methods.said.generation import generation_report
from semrec_worker.methods.said.report import write_reports
from semrec_worker.methods.said.settings import RESUMABLE, TrainSAIDConfig
from semrec_worker.methods.said.snapshots import drop_after, write_snapshot
from semrec_worker.training.finite import ensure_finite_loss

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    phase: str = "train"  # "train" or "only_new"
    epoch: int = 0
    next_batch: int = 0
    train_s: float = 0.0
    best_accuracy: float = -1.0
    bad_epochs: int = 0
    stopped: str | None = None
    metrics: list[dict] = field(default_factory=list)
    step: int = 0  # optimisation steps so far in this phase (all epochs)
    items_seen: int = 0  # items trained on so far in this phase, over all ranks


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Distributed(tdist.get_rank(), tdist.get_world_size())


class SAIDTrainer:
    """Owns the frozen LM, the projector, its optimisers and the run directory."""

    def __init__(
        self,
        config: TrainSAIDConfig,
        run_dir: Path,
        dataset: SequenceDataset,
        lm: LanguageModel | None = None,
    ) -> None:
        self.config, self.run_dir, self.dataset = config, run_dir, dataset
        self.dist = init_distributed()
        self.device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", self.dist.rank)))
        if config.threads:
            torch.set_num_threads(config.threads)
        self.precision = resolve_precision(config.precision, self.device)
        self.lm = lm or load_language_model(
            config.llm, "bfloat16" if self.device.type == "cuda" and self.precision == "bf16" else "float32"
        )
        self.model = said.freeze(self.lm.model).to(self.device)
        tokenizer = self.lm.tokenizer
        self.captions: TokenizedCaptions = tokenize_captions(
            dataset.items, tokenizer, config.caption_fields, config.max_caption_tokens
        )
        self.kind = said.resolve_projector(config.projector, self.device)
        features = said.caption_features(self.model, self.captions.ids)
        self.projector = said.build_projector(self.kind, features, config, config.seed).to(self.device)
        instruction_ids = tokenizer(config.instruction, add_special_tokens=False)["input_ids"] if config.instruction else []
        with torch.no_grad():
            ids = torch.as_tensor(instruction_ids, dtype=torch.long, device=self.device)
            self.instruction = self.model.get_input_embeddings()(ids).float()
        self.batch_size = config.batch_size or (64 if self.device.type == "cuda" else 16)
        self.progress = Progress()
        self.trainable = np.arange(min(dataset.n_items, config.max_items or dataset.n_items))
        self.freeze_shared = False
        self._build_optimisers()

    # ---- optimisation -------------------------------------------------------------------------------
    def _build_optimisers(self) -> None:
        self.row_optimizer = torch.optim.SparseAdam(said.row_parameters(self.projector), lr=self.config.lr_rows)
        shared = [] if self.freeze_shared else self.projector.shared_parameters()
        for param in self.projector.shared_parameters():
            param.requires_grad_(not self.freeze_shared)
        self.shared_optimizer = torch.optim.Adam(shared, lr=self.config.lr_projector) if shared else None

    def step(self, rows: np.ndarray) -> tuple[float, int, int]:
        """One optimisation step on a batch of item rows: (loss, correct tokens, caption tokens)."""
        captions, mask = self.captions.batch(rows.tolist(), self.device)
        row_index = torch.as_tensor(rows, device=self.device)
        with autocast(self.device, self.precision):
            prefix = self.projector(row_index)
            loss, correct = said.caption_loss(self.model, prefix, self.instruction, captions, mask)
        self.row_optimizer.zero_grad(set_to_none=True)
        if self.shared_optimizer:
            self.shared_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.dist.world > 1 and self.shared_optimizer:
            self._average_shared_gradients()
        self.row_optimizer.step()
        if self.shared_optimizer:
            self.shared_optimizer.step()
        return float(loss.detach()), int(correct), int(mask.sum())

    def _average_shared_gradients(self) -> None:
        import torch.distributed as tdist

        for param in self.projector.shared_parameters():
            if param.grad is not None:
                tdist.all_reduce(param.grad)
                param.grad /= self.dist.world

    def _gather_rows(self) -> None:
        """Every rank owns rows with row % world == rank; make all ranks hold all trained rows."""
        if self.dist.world <= 1:
            return
        import torch.distributed as tdist

        (weight,) = said.row_parameters(self.projector)
        with torch.no_grad():
            owned = (torch.arange(weight.shape[0], device=weight.device) % self.dist.world) == self.dist.rank
            trained = torch.zeros(weight.shape[0], dtype=torch.bool, device=weight.device)
            trained[torch.as_tensor(self.trainable, device=weight.device)] = True
            mine = weight * (owned & trained)[:, None]
            tdist.all_reduce(mine)
            weight.copy_(torch.where(trained[:, None], mine, weight))

    # ---- epochs -------------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rows = self.trainable[self.trainable % self.dist.world == self.dist.rank]
        phase_seed = 0 if self.progress.phase == "train" else 7919
        batches = length_buckets(
            self.captions.lengths, rows, self.batch_size, self.config.seed * 100_003 + epoch + phase_seed
        )
        if self.dist.world > 1:
            import torch.distributed as tdist

            count = torch.tensor(len(batches), device=self.device)
            tdist.all_reduce(count, op=tdist.ReduceOp.MIN)
            batches = batches[: int(count)]
        return batches

    def eval_rows(self) -> list[int]:
        rng = np.random.default_rng(self.config.seed)
        n = min(self.config.eval_items, len(self.trainable))
        return sorted(rng.choice(self.trainable, size=n, replace=False).tolist())

    def evaluate(self) -> dict:
        rows = self.eval_rows()
        with torch.no_grad(), autocast(self.device, self.precision):
            return generation_report(
                self.model,
                self.lm.tokenizer,
                self.projector,
                self.instruction,
                rows,
                [self.captions.texts[r] for r in rows],
                max_new_tokens=self.config.max_caption_tokens + 8,
            )

    def fit(self) -> ItemTable:
        """Train until the epochs are done, accuracy plateaus or the time budget is spent; export the table."""
        config, progress = self.config, self.progress
        if not any(m["phase"] == progress.phase for m in progress.metrics) and self.dist.main:
            self._record(self.evaluate(), epoch=0.0, loss=None, token_acc=None, items_per_s=None, steps=0)
        budget_s = config.max_train_minutes * 60 if config.max_train_minutes else math.inf
        last_checkpoint = last_eval = time.monotonic()
        while progress.stopped is None and progress.epoch < config.epochs:
            batches = self.epoch_batches(progress.epoch)
            losses, correct, tokens, items = [], 0, 0, 0
            bar = _progress_bar(len(batches), progress, self.dist.main)
            bar.update(progress.next_batch)
            started = time.monotonic()
            for index in range(progress.next_batch, len(batches)):
                loss, hits, count = self.step(batches[index])
                ensure_finite_loss(loss, f"epoch {progress.epoch + 1}, step {index + 1} of {len(batches)}")
                losses.append(loss)
                correct, tokens, items = correct + hits, tokens + count, items + len(batches[index])
                progress.step += 1
                progress.items_seen += len(batches[index]) * self.dist.world
                elapsed = time.monotonic() - started
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", tok_acc=f"{correct / tokens:.3f}",
                                items_s=f"{items / max(elapsed, 1e-9):.1f}")
                progress.next_batch = index + 1
                if progress.train_s + elapsed >= budget_s:
                    progress.stopped = "time budget"
                    break
                if config.eval_every_minutes and index + 1 < len(batches) and time.monotonic() - last_eval > config.eval_every_minutes * 60:
                    progress.train_s += time.monotonic() - started
                    self._gather_rows()
                    if self.dist.main:
                        self._record(self.evaluate(), epoch=round(progress.epoch + (index + 1) / len(batches), 3),
                                     loss=float(np.mean(losses[-50:])), token_acc=correct / tokens,
                                     items_per_s=items / max(time.monotonic() - started, 1e-9), steps=len(losses))
                    started, items = time.monotonic(), 0
                    last_eval = time.monotonic()
                if time.monotonic() - last_checkpoint > config.checkpoint_every_minutes * 60:
                    progress.train_s += time.monotonic() - started
                    started, items = time.monotonic(), 0
                    self.save_checkpoint()
                    last_checkpoint = time.monotonic()
            bar.close()
            epoch_s = time.monotonic() - started
            progress.train_s += epoch_s
            done_fraction = progress.next_batch / max(len(batches), 1)
            epoch_value = progress.epoch + done_fraction
            if progress.next_batch >= len(batches):
                progress.epoch, progress.next_batch = progress.epoch + 1, 0
            self._gather_rows()
            if self.dist.main:
                report = self.evaluate()
                self._record(
                    report,
                    epoch=round(epoch_value, 3),
                    loss=float(np.mean(losses)) if losses else None,
                    token_acc=correct / tokens if tokens else None,
                    items_per_s=items / epoch_s if epoch_s > 0 and items else None,
                    steps=len(losses),
                )
                self._early_stop(report["word_accuracy"])
            self._broadcast_stop()
            self.save_checkpoint()
            last_checkpoint = time.monotonic()
        if progress.stopped is None:
            progress.stopped = "epochs done"
        return self.export()

    def _early_stop(self, accuracy: float) -> None:
        progress = self.progress
        if accuracy >= progress.best_accuracy + self.config.min_delta:
            progress.best_accuracy, progress.bad_epochs = accuracy, 0
            return
        progress.bad_epochs += 1
        if progress.bad_epochs >= self.config.patience and progress.stopped is None:
            progress.stopped = f"accuracy plateau ({self.config.patience} epochs without +{self.config.min_delta})"

    def _broadcast_stop(self) -> None:
        if self.dist.world <= 1:
            return
        import torch.distributed as tdist

        flag = torch.tensor(int(self.progress.stopped is not None), device=self.device)
        tdist.broadcast(flag, 0)
        if int(flag) and self.progress.stopped is None:
            self.progress.stopped = "stopped by rank 0"

    def _record(self, report: dict, *, epoch: float, loss, token_acc, items_per_s, steps: int) -> None:
        entry = {
            "phase": self.progress.phase,
            "epoch": epoch,
            "steps": steps,
            "train_loss": None if loss is None else round(loss, 4),
            "token_accuracy": None if token_acc is None else round(token_acc, 4),
            "word_accuracy": round(report["word_accuracy"], 4),
            "exact_match": round(report["exact"], 4),
            "items_per_s": None if items_per_s is None else round(items_per_s, 2),
            "train_s": round(self.progress.train_s, 1),
        }
        self.progress.metrics.append(entry)
        echo(
            f"[said] {entry['phase']} epoch {epoch}: generation word accuracy {entry['word_accuracy']:.3f}, "
            f"exact {entry['exact_match']:.3f}, train loss {entry['train_loss']}, token acc {entry['token_accuracy']}"
        )
        self.last_pairs = report["pairs"]
        write_reports(self.run_dir, self.progress.metrics, report["pairs"], self.summary())
        if self.config.snapshot_tables:
            self._snapshot(entry)

    def _snapshot(self, entry: dict) -> None:
        """The table as it is now (rows already gathered) -> snapshots/step<N>/item_table.npz + the index."""
        progress = self.progress
        snapshot = {"phase": progress.phase, "step": progress.step, "epoch": entry["epoch"],
                    "items_seen": progress.items_seen, "word_accuracy": entry["word_accuracy"],
                    "exact_match": entry["exact_match"], "train_s": entry["train_s"]}
        write_snapshot(self.run_dir, self._table(), snapshot)

    # ---- persistence --------------------------------------------------------------------------------
    def summary(self) -> dict:
        return {
            "dataset": self.dataset.name,
            "dataset_fingerprint": self.dataset.fingerprint,
            "lm": self.lm.name,
            "projector": self.kind,
            "batch_size": self.batch_size,
            "trainable_items": int(len(self.trainable)),
            "eval_item_ids": [self.dataset.item_ids[r] for r in self.eval_rows()],
            "stopped": self.progress.stopped,
        }

    def save_checkpoint(self) -> None:
        self._gather_rows()
        if not self.dist.main:
            return
        state = {
            "config": self.config.to_dict(),
            "item_ids": self.dataset.item_ids,
            "projector": self.projector.state_dict(),
            "row_optimizer": self.row_optimizer.state_dict(),
            "shared_optimizer": self.shared_optimizer.state_dict() if self.shared_optimizer else None,
            "progress": self.progress.__dict__,
            "trainable": self.trainable.tolist(),
        }
        tmp = self.run_dir / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.run_dir / CHECKPOINT)

    def load_checkpoint(self, state: dict) -> None:
        if state["item_ids"] != self.dataset.item_ids:
            raise UserError("the checkpoint was trained on other items; use --only-new to add new items")
        self.projector.load_state_dict(state["projector"])
        self.row_optimizer.load_state_dict(state["row_optimizer"])
        if self.shared_optimizer and state["shared_optimizer"]:
            self.shared_optimizer.load_state_dict(state["shared_optimizer"])
        self.progress = Progress(**{**state["progress"], "stopped": None})  # resuming means: go on
        self.trainable = np.asarray(state["trainable"], dtype=np.int64)
        if self.dist.main and "step" in state["progress"]:
            # snapshots taken after this checkpoint belong to steps that are about to be retrained
            dropped = drop_after(self.run_dir, self.progress.phase, self.progress.step)
            if dropped:
                echo(f"[said] dropped {len(dropped)} snapshot(s) newer than the checkpoint (step {self.progress.step})")

    def adopt_shared(self, mlp_state: dict[str, torch.Tensor]) -> None:
        """Take a trained run's shared projector weights (the amortised MLP) and freeze them: from here on only
        the per-item rows of this trainer's items train (the refresh encoder's new items)."""
        if self.kind == "amortised":
            if not mlp_state:
                raise UserError("the amortised projector needs the trained MLP weights")
            self.projector.mlp.load_state_dict(mlp_state)
        self.freeze_shared = True
        self._build_optimisers()

    def start_only_new(self, state: dict, old_table: ItemTable) -> int:
        """Adopt the old run's projector; train only rows of items the old table lacks. Returns their count."""
        old_index = {item_id: row for row, item_id in enumerate(state["item_ids"])}
        projector_state = state["projector"]
        (weight,) = said.row_parameters(self.projector)
        row_key = "rows.weight" if self.kind == "table" else "residual.weight"
        with torch.no_grad():
            if self.kind == "amortised":
                self.projector.mlp.load_state_dict(
                    {k.removeprefix("mlp."): v for k, v in projector_state.items() if k.startswith("mlp.")}
                )
            old_rows = projector_state[row_key]
            for row, item_id in enumerate(self.dataset.item_ids):
                if item_id in old_index:
                    weight[row] = old_rows[old_index[item_id]].to(weight.device)
        new_rows = [row for row, item_id in enumerate(self.dataset.item_ids) if item_id not in old_index]
        self.trainable = np.asarray(new_rows, dtype=np.int64)
        self.freeze_shared = True
        self._build_optimisers()
        self.progress = Progress(phase="only_new", metrics=list(Progress(**state["progress"]).metrics))
        self.old_table = old_table
        return len(new_rows)

    def export(self) -> ItemTable:
        """Gather the rows, write item_table.npz and the reports; return the table."""
        self._gather_rows()
        table = self._table()
        if self.dist.main:
            table.save(self.run_dir / "item_table.npz")
            write_reports(self.run_dir, self.progress.metrics, getattr(self, "last_pairs", []), self.summary())
        return table

    def _table(self) -> ItemTable:
        """The item table of the projector as it is now (rows must be gathered first)."""
        vectors = said.prefixes_for_table(self.projector, self.dataset.n_items, self.config.table_vectors)
        ids = list(self.dataset.item_ids)
        old = getattr(self, "old_table", None)
        if old is not None:  # keep rows of old items that this dataset no longer has
            present = set(ids)
            keep = [r for r, item_id in enumerate(old.ids) if item_id not in present]
            ids += [old.ids[r] for r in keep]
            vectors = torch.cat([vectors, torch.as_tensor(old.vectors[keep])])
        last = self.progress.metrics[-1] if self.progress.metrics else {}
        metadata = {
            "method": "said",
            "lm": self.lm.name,
            "dataset": self.dataset.name,
            "dataset_fingerprint": self.dataset.fingerprint,
            "created_at": utc_now(),
            "accuracy": last.get("word_accuracy"),
            "exact_match": last.get("exact_match"),
            "virtual_tokens": self.config.virtual_tokens,
            "token_width": self.lm.hidden_size,
            "row_layout": self.config.table_vectors,
            "projector": self.kind,
            "epochs_trained": last.get("epoch"),
            "stopped": self.progress.stopped,
            "settings": said.SAIDSettings.model_validate(
                {k: getattr(self.config, k) for k in said.SAIDSettings.model_fields}
            ).model_dump(mode="json"),
        }
        return ItemTable(ids, vectors.numpy(), metadata)


def _progress_bar(total: int, progress: Progress, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=f"said {progress.phase} epoch {progress.epoch + 1}",
        unit="batch",
        disable=not enabled,
        mininterval=5.0,
        dynamic_ncols=True,
    )


def resumed_config(config: TrainSAIDConfig) -> TrainSAIDConfig:
    """The saved run's config with only the resumable settings the user gave overriding it."""
    saved = TrainSAIDConfig.load(config.resume_from)
    changed = {k for k in config.model_fields_set if getattr(config, k) != getattr(saved, k)}
    fixed = sorted(changed - RESUMABLE)
    if fixed:
        flags = ", ".join("--" + k.replace("_", "-") for k in fixed)
        raise UserError(f"{flags}: cannot change on --resume-from (these define the trained model)")
    return saved.model_copy(update={k: getattr(config, k) for k in changed | {"resume_from", "only_new"}})


def train_said(config: TrainSAIDConfig, dataset: SequenceDataset | None = None, lm: LanguageModel | None = None):
    """Run (or resume) stage 1 and return the `ItemTable`."""
    if config.only_new and config.resume_from is None:
        raise UserError("--only-new needs --resume-from RUN_DIR (the run whose rows stay fixed)")
    state = None
    if config.resume_from is not None:
        checkpoint = Path(config.resume_from) / CHECKPOINT
        if not checkpoint.exists():
            raise UserError(f"{config.resume_from}: no {CHECKPOINT} there to resume from")
        config = resumed_config(config)
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    run_dir = Path(config.out or config.resume_from or "")
    if not str(run_dir) or (config.out is None and config.resume_from is None):
        raise UserError("--out RUN_DIR is required")
    run_dir.mkdir(parents=True, exist_ok=True)
    dataset = dataset or load_dataset(config)
    trainer = SAIDTrainer(config, run_dir, dataset, lm)
    if state is not None and config.only_new:
        old_table = ItemTable.load(Path(config.resume_from))
        n_new = trainer.start_only_new(state, old_table)
        echo(f"[said] --only-new: {n_new} new items get rows; {dataset.n_items - n_new} existing rows stay fixed")
    elif state is not None:
        trainer.load_checkpoint(state)
        echo(f"[said] resumed {config.resume_from} at epoch {trainer.progress.epoch + 1}, batch {trainer.progress.next_batch}")
    if trainer.dist.main:
        config.save(run_dir)
    echo(
        f"[said] {dataset.name}: {dataset.n_items} items, {len(trainer.trainable)} trained, LM {trainer.lm.name}, "
        f"projector {trainer.kind}, K={config.virtual_tokens}, batch {trainer.batch_size}, {trainer.precision}, "
        f"device {trainer.device}, world {trainer.dist.world}, threads {torch.get_num_threads()}"
    )
    table = trainer.fit()
    echo(
        f"[said] done ({trainer.progress.stopped}): generation accuracy {table.metadata['accuracy']}, "
        f"table {run_dir / 'item_table.npz'} ({len(table)} x {table.dim})"
    )
    return table


def run_from_json(path: str) -> None:  # entry point for torchrun
    train_said(TrainSAIDConfig.load(path))


if __name__ == "__main__":
    import sys

    run_from_json(sys.argv[sys.argv.index("--config") + 1])
