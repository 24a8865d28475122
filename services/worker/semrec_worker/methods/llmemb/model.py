"""LLMEmb (Liu et al., "LLMEmb: Large Language Model Can Be a Good Embedding Generator for Sequential
Recommendation", AAAI'25): fine-tune an LLM into an item-embedding generator, then adapt its embeddings to
a sequential recommender.

Stage 1, Supervised Contrastive Fine-Tuning (SCFT), `train_scft`:

- (eq. 3) item prompt, attribute by attribute, each value cut to 100 characters:
      p_i = "The {domain} item has the following attributes: " + "{key_1} is {value_1}; {key_2} is {value_2}; ..."
  Attribute-level augmentation: two views p_i', p_i'' of every item, each dropping 40% of its attributes
  at random (at least one kept).
- (eq. 4) item embedding = masked mean of the LLM's last hidden states over the prompt tokens,
      e_i = (1 / |p_i|) sum_t h_L(p_i)_t,
  the LLM being trained through LoRA adapters (r=8, alpha=32, dropout 0.1) on the attention and MLP
  projections; the base weights stay frozen.
- (eqs. 4-5) in-batch contrastive loss between the two views, both directions, trainable temperature tau,
  the inner product as similarity and the positive out of the denominator (eq. 4's I[i != k]):
      L^1_CL = -(1/B) sum_i [ <e_i', e_i''> / tau - log sum_{k != i} exp(<e_i', e_k''> / tau) ],  L_SCFT = L^1 + L^2
  (`SymmetricInfoNCE(learnable=True, similarity="dot", exclude_positive=True)`, which averages the two
  directions: half of eq. 5, the same optimum). Batches of 64 items (128 prompts) by default, run as
  length-grouped forwards of `forward_chunk` prompts; `lora_top_layers` keeps the LoRA (and the backward
  pass) to the LM's last layers when a CPU budget needs it. The run saves the LoRA adapter and the item
  table of the full prompts' embeddings.

Stage 2, Recommendation Adaptation Training (RAT), trained together with the backbone:

- (eq. 6) the SCFT embeddings are reduced by PCA to an intermediate width d_m and frozen (z_i); a
  two-layer adapter maps them to the backbone width d: e_i = W_2 (W_1 z_i + b_1) + b_2, hidden width d_m / 2
  (`LLMEmbAdapter`, an item-embedding module that gives the backbone its full item matrix; it starts with no
  shared offset and adapted rows of mean norm 1 (`start_adapter`), as the paper does not say how W and b are
  initialised and torch's default biases make every item start in the same direction). d_m defaults to
  the LM width (576 for SmolLM2: no reduction) and must be >= d, as the paper's d_m (1536) is "significantly
  larger" than the backbone's embeddings.
- (eq. 7) collaborative alignment: the adapted embeddings at every target position of a batch (S rows) are
  pulled towards the item embeddings c_i of a pretrained SASRec with in-batch contrastive terms in both
  directions, the positive (and the other positions of the same item) out of the denominator, the
  similarity the SASRec was trained with (the paper's: inner product, BCE), temperature gamma
  (`CollaborativeAlignment`).
- (eq. 8) total loss L = L_SRS + alpha * L_align; L_SRS is the backbone's own loss (the paper's SASRec:
  BCE, the default of `semrec train llmemb-rat`), alpha and gamma chosen on validation.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from semrec.errors import UserError
from semrec.item_table import ItemTable
from torch import nn

from semrec_worker.backbones.item_embedding import start_adapter
from semrec_worker.core.lora import add_lora
from semrec_worker.core.reduction import PCAFit, fit_pca
from semrec_worker.core.runtime import default_device
from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.data.text import domain_for, item_attributes, item_prompt
from semrec_worker.lm.backends import TransformersBackend
from semrec_worker.lm.loader import LanguageModel, load_language_model
from semrec_worker.methods.llmemb.settings import ADAPTER_DIR, CHECKPOINT, SCFT_PCA, SCFTSettings
from semrec_worker.methods.symmetric_infonce import SymmetricInfoNCE
from semrec_worker.training.finite import ensure_finite_loss

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------------------------- prompts (eq. 3)


def attribute_view(
    attributes: dict[str, str], drop_fraction: float, rng: np.random.Generator
) -> dict[str, str]:
    """The attributes minus round(drop_fraction * n) of them chosen at random (never all), order kept."""
    keys = list(attributes)
    n_drop = min(round(drop_fraction * len(keys)), len(keys) - 1)
    if n_drop <= 0:
        return dict(attributes)
    dropped = set(rng.choice(len(keys), size=n_drop, replace=False).tolist())
    return {k: attributes[k] for i, k in enumerate(keys) if i not in dropped}


def domain_of(dataset: SequenceDataset, domain: str | None) -> str:
    return domain_for(dataset.name, domain)


# ---------------------------------------------------------------------------------------------------- SCFT


def probe_rows(n_items: int, settings: SCFTSettings) -> np.ndarray:
    """Items held out of SCFT batches to measure view retrieval (a fixed random subset)."""
    k = min(settings.probe_items, n_items // 2)
    return np.sort(np.random.default_rng([settings.seed, 7]).permutation(n_items)[:k])


def view_retrieval(
    model,
    tokenizer,
    dataset: SequenceDataset,
    rows: np.ndarray,
    settings: SCFTSettings,
    device: str | None = None,
) -> dict[str, float]:
    """What SCFT optimises, measured on held-out items: each item's two attribute-dropped views (fixed seed)
    are embedded; accuracy@1 of finding an item's other view among all probed items' views by cosine
    (both directions averaged), and the mean rank of the right view (1 = best); the `_dot` keys rank by the
    inner product (eq. 4's similarity)."""
    if len(rows) < 2:
        return {}
    rng = np.random.default_rng([settings.seed, 11])
    domain = domain_of(dataset, settings.domain)
    attributes = [item_attributes(dataset.items[r]) for r in rows]
    views = [
        [
            item_prompt(attribute_view(a, settings.drop_fraction, rng), domain, settings.max_value_chars)
            for a in attributes
        ]
        for _ in range(2)
    ]
    backend = TransformersBackend(
        LanguageModel(model, tokenizer, "probe"), "mean", settings.embed_batch_size, settings.max_prompt_tokens,
        settings.precision, device, progress=False,
    )
    raw_a, raw_b = (torch.as_tensor(backend.embed(v)) for v in views)
    out: dict[str, float] = {"probe_items": len(rows)}
    for suffix, (a, b) in {"": (F.normalize(raw_a, dim=1), F.normalize(raw_b, dim=1)), "_dot": (raw_a, raw_b)}.items():
        sim = a @ b.T
        diagonal = sim.diag().unsqueeze(1)
        # ties count against the item (its own view is one of the >=): a collapsed embedding ranks last, not first
        ranks = torch.cat([(sim >= diagonal).sum(1), (sim.T >= diagonal).sum(1)]).float()
        out[f"view_acc@1{suffix}"] = round(float((ranks == 1).float().mean()), 4)
        out[f"view_mean_rank{suffix}"] = round(float(ranks.mean()), 2)
    return out


def lora_model(model, settings: SCFTSettings):
    return add_lora(model, settings.lora_r, settings.lora_alpha, settings.lora_dropout, settings.lora_targets,
                    settings.lora_top_layers)


def embed_views(backend: TransformersBackend, texts: list[str], chunk: int) -> torch.Tensor:
    """Differentiable pooled embeddings of `texts` [len(texts), d], in their order, computed in forwards of
    `chunk` sequences grouped by token length (a batch padded to its longest prompt wastes the rest)."""
    lengths = [len(ids) for ids in backend.lm.tokenizer(texts, truncation=True, max_length=backend.max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    parts = [backend.embed_batch([texts[i] for i in order[k : k + chunk]]) for k in range(0, len(order), chunk)]
    pooled = torch.cat(parts)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return pooled[inverse.to(pooled.device)]


def initial_temperature(settings: SCFTSettings, first: torch.Tensor) -> float:
    """The temperature SCFT starts from (eq. 4's tau is trainable): the setting, or for the raw inner product a
    scale that makes the first batch's logits O(10) (SmolLM2's mean-pooled states have norms of tens)."""
    if settings.temperature is not None:
        return settings.temperature
    if settings.similarity == "cosine":
        return 0.05
    return max(float(first.detach().float().pow(2).sum(1).mean()) / 20.0, 1e-3)


def in_batch_accuracy(loss_fn: SymmetricInfoNCE, a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of rows (both directions) whose own other view scores highest in the batch: how hard the step was."""
    with torch.no_grad():
        logits = loss_fn.logits(a, b)
        labels = torch.arange(len(a), device=a.device)
        return float(((logits.argmax(1) == labels).float().mean() + (logits.argmax(0) == labels).float().mean()) / 2)


def _batches_for(step: int, train_rows: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """Item rows of training step `step`: epoch-wise permutations, deterministic, so a resume continues exactly."""
    per_epoch = max(1, math.ceil(len(train_rows) / batch_size))
    epoch, k = divmod(step, per_epoch)
    order = train_rows[np.random.default_rng([seed, epoch]).permutation(len(train_rows))]
    return order[k * batch_size : (k + 1) * batch_size]


class SCFTResult:
    def __init__(self, model, history: list[dict], steps: int, stopped: str, probe: dict) -> None:
        self.model = model
        self.history = history
        self.steps = steps
        self.stopped = stopped
        self.probe = probe  # {"before": {...}, "after": {...}} view retrieval on held-out items


def train_scft(
    lm: LanguageModel,
    dataset: SequenceDataset,
    settings: SCFTSettings,
    run_dir: Path | None = None,
    device: str | None = None,
    progress: bool = True,
) -> SCFTResult:
    """LoRA contrastive fine-tuning (eqs. 3-5); checkpoints to `run_dir` and resumes from it."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from tqdm.auto import tqdm

    device = device or default_device()
    torch.manual_seed(settings.seed)
    model = lora_model(lm.model, settings)
    backend = TransformersBackend(
        LanguageModel(model, lm.tokenizer, lm.name), "mean", settings.batch_size, settings.max_prompt_tokens,
        settings.precision, device, progress=False,
    )
    n = dataset.n_items
    attributes = [item_attributes(item) for item in dataset.items]
    domain = domain_of(dataset, settings.domain)
    held_out = probe_rows(n, settings)
    train_rows = np.setdiff1d(np.arange(n), held_out)

    def step_views(step: int) -> tuple[np.ndarray, list[str]]:
        rows = _batches_for(step, train_rows, settings.batch_size, settings.seed)
        rng = np.random.default_rng([settings.seed, step, 1])
        views = [
            item_prompt(attribute_view(attributes[r], settings.drop_fraction, rng), domain, settings.max_value_chars)
            for _ in range(2)
            for r in rows
        ]
        return rows, views

    tau = settings.temperature
    if tau is None and settings.similarity == "dot":  # from step 0's batch, the same on a resume
        with torch.no_grad():
            tau = initial_temperature(settings, embed_views(backend, step_views(0)[1], settings.forward_chunk))
    loss_fn = SymmetricInfoNCE(
        tau or 0.05, learnable=True, similarity=settings.similarity, exclude_positive=settings.exclude_positive
    ).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad] + list(loss_fn.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=0.0)
    per_epoch = max(1, math.ceil(len(train_rows) / settings.batch_size))
    total = settings.max_steps if settings.max_steps is not None else math.ceil(settings.epochs * per_epoch)

    step, history, probe = 0, [], {}
    checkpoint = run_dir / CHECKPOINT if run_dir is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        set_peft_model_state_dict(model, state["lora"])
        optimizer.load_state_dict(state["optimizer"])
        loss_fn.load_state_dict(state["loss"])
        step, history, probe = state["step"], state["history"], state.get("probe", {})
        log.info("resumed SCFT from %s at step %d", checkpoint, step)
    if "before" not in probe:  # LoRA starts as the identity (B = 0): this is the untuned LM
        probe["before"] = view_retrieval(model, lm.tokenizer, dataset, held_out, settings, device)

    def save_checkpoint() -> None:
        if checkpoint is None:
            return
        tmp = checkpoint.with_suffix(".tmp")
        torch.save(
            {"step": step, "lora": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
             "loss": loss_fn.state_dict(), "history": history, "probe": probe},
            tmp,
        )
        tmp.replace(checkpoint)

    start = time.perf_counter()
    stopped = "steps"
    model.train()
    bar = tqdm(total=total, initial=step, desc="SCFT", unit="step", disable=not progress)
    while step < total:
        if (
            settings.max_train_minutes is not None
            and time.perf_counter() - start > settings.max_train_minutes * 60
        ):
            stopped = "time budget"
            break
        rows, views = step_views(step)
        if len(rows) < 3:  # a tail batch this small has no negative once the positive is left out
            step += 1
            continue
        t0 = time.perf_counter()
        pooled = embed_views(backend, views, settings.forward_chunk)
        a, b = pooled[: len(rows)], pooled[len(rows) :]
        loss = loss_fn(a, b)
        ensure_finite_loss(loss, f"SCFT step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        history.append({"step": step, "loss": round(loss.item(), 5), "temperature": round(loss_fn.temperature, 5),
                        "batch_acc@1": round(in_batch_accuracy(loss_fn, a, b), 4), "items": len(rows),
                        "step_s": round(time.perf_counter() - t0, 3)})
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", tau=f"{loss_fn.temperature:.4f}")
        if step % settings.checkpoint_every_steps == 0:
            save_checkpoint()
    bar.close()
    model.eval()
    probe["after"] = view_retrieval(model, lm.tokenizer, dataset, held_out, settings, device)
    save_checkpoint()
    return SCFTResult(model, history, step, stopped, probe)


def embed_items(
    model, tokenizer, dataset: SequenceDataset, settings: SCFTSettings, device: str | None = None,
    progress: bool = True, name: str = "llm",
) -> np.ndarray:
    """Masked-mean embeddings of every item's full prompt (eq. 4), one row per item in dataset order."""
    texts = scft_texts(dataset, settings)
    backend = TransformersBackend(
        LanguageModel(model, tokenizer, name), "mean", settings.embed_batch_size, settings.max_prompt_tokens,
        settings.precision, device, progress,
    )
    return backend.embed(texts)


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["loss"] for h in history], lw=1, label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("SCFT contrastive loss")
    ax2 = ax.twinx()
    ax2.plot(steps, [h["temperature"] for h in history], color="tab:orange", lw=1, label="temperature")
    ax2.set_ylabel("temperature")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_run(result: SCFTResult, run_dir: Path) -> None:
    result.model.save_pretrained(str(run_dir / ADAPTER_DIR))
    (run_dir / "history.json").write_text(json.dumps(result.history, indent=1) + "\n")
    summary = {"steps": result.steps, "stopped": result.stopped, "view_retrieval": result.probe}
    (run_dir / "scft_metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot_history(result.history, run_dir / "scft_loss.png")


class LLMEmbSCFT:
    """EmbeddingMethod: SCFT (or a saved adapter) -> item table of fine-tuned mean-pooled embeddings."""

    name = "llmemb"

    def __init__(
        self,
        settings: SCFTSettings | None = None,
        run_dir: Path | None = None,
        adapter: Path | None = None,
        lm: LanguageModel | None = None,
        progress: bool = True,
    ) -> None:
        self.settings = settings or SCFTSettings()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.adapter = adapter
        self.lm = lm
        self.progress = progress
        self.result: SCFTResult | None = None

    def fit(self, dataset: SequenceDataset) -> ItemTable | None:
        """The item table (None with `embed_catalogue=False`: only the adapter and metrics are written)."""
        s = self.settings
        device = default_device()
        lm = self.lm or load_language_model(s.llm)
        train_s = 0.0
        if self.adapter is not None:
            from peft import PeftModel

            if not (Path(self.adapter) / "adapter_config.json").exists():
                raise UserError(f"{self.adapter}: no LoRA adapter there (adapter_config.json missing)")
            model = PeftModel.from_pretrained(lm.model, str(self.adapter)).to(device).eval()
            history, steps, stopped, probe = [], None, "loaded adapter", {}
        else:
            start = time.perf_counter()
            self.result = train_scft(lm, dataset, s, self.run_dir, device, self.progress)
            train_s = time.perf_counter() - start
            r = self.result
            model, history, steps, stopped, probe = r.model, r.history, r.steps, r.stopped, r.probe
            if self.run_dir is not None:
                save_run(r, self.run_dir)
        if not s.embed_catalogue:
            return None
        start = time.perf_counter()
        vectors = embed_items(model, lm.tokenizer, dataset, s, device, self.progress, lm.name)
        embed_s = time.perf_counter() - start
        recent = history[-20:]
        metadata = {
            "method": self.name,
            "stage": "scft",
            "lm": s.llm,
            "pooling": "mean",
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint,
            "settings": s.model_dump(mode="json"),
            "adapter": str(self.adapter) if self.adapter is not None else ADAPTER_DIR,
            "scft_steps": steps,
            "scft_items_seen": None if steps is None else steps * s.batch_size,
            "scft_passes": None if steps is None else round(steps * s.batch_size / dataset.n_items, 3),
            "scft_stopped": stopped,
            "scft_final_loss": round(float(np.mean([h["loss"] for h in recent])), 4) if recent else None,
            "scft_first_loss": history[0]["loss"] if history else None,
            "scft_temperature": history[-1]["temperature"] if history else None,
            "scft_view_retrieval": probe,
            "train_s": round(train_s, 1),
            "embed_s": round(embed_s, 1),
        }
        if s.dim is not None:
            pca = fit_pca(vectors, s.dim)
            vectors = pca.transform(vectors)
            metadata["pca_variance_kept"] = round(pca.variance_kept, 4)
            if self.run_dir is not None:
                np.savez(self.run_dir / SCFT_PCA, **pca.arrays())
                metadata["pca_file"] = SCFT_PCA
        return ItemTable(dataset.item_ids, vectors, metadata)


# ----------------------------------------------------------------------------------------------------- RAT


def _padded_rows(table: ItemTable, dataset: SequenceDataset) -> np.ndarray:
    """The table's rows in dataset item order with a zero padding row 0: [n_items + 1, dim]."""
    matrix, missing = table.aligned(dataset.item_ids)
    if missing:
        raise UserError(f"item table lacks {len(missing)} of the dataset's items (e.g. {missing[0]})")
    return np.vstack([np.zeros((1, table.dim), np.float32), matrix])


class LLMEmbAdapter(nn.Module):
    """RAT eq. 6: frozen PCA'd LLM embeddings z_i [n_items + 1, d_m] -> W_2 (W_1 z_i + b_1) + b_2 in R^d.

    The item-embedding layer a backbone trains through (the seqrec trainer's contract): `weight` is the
    full item matrix [n_items + 1, d] (row 0, padding, is zero) and `forward(ids)` looks rows up.
    `from_table` keeps how z was made (`pca`, `scale`: z = pca(x) / scale) so new items can be mapped alike.
    """

    part_name = "llmemb-adapter"  # recorded in the run's config.json; `empty_adapter` rebuilds it

    def __init__(
        self,
        semantic: np.ndarray | torch.Tensor,
        width: int,
        hidden: int | None = None,
        start: bool = True,
        whiten: bool = False,
    ) -> None:
        super().__init__()
        self.pca: PCAFit | None = None
        self.scale = 1.0
        semantic = torch.as_tensor(np.asarray(semantic, dtype=np.float32))
        self.register_buffer("semantic", semantic)  # frozen: a buffer, never a parameter
        d_m = semantic.shape[1]
        hidden = hidden or max(1, d_m // 2)
        self.project = nn.Sequential(nn.Linear(d_m, hidden), nn.Linear(hidden, width))
        if start:
            start_adapter(self.project, semantic[1:], whiten)
        self.width = width
        self.method = "llmemb"  # the name the seqrec trainer reports results under

    @property
    def n_items(self) -> int:
        return int(self.semantic.shape[0] - 1)

    @classmethod
    def from_table(
        cls, table: ItemTable, dataset: SequenceDataset, width: int, d_m: int | None = None, whiten: bool = False
    ) -> LLMEmbAdapter:
        """PCA the SCFT table's rows (this dataset's items) to d_m, scaled to unit mean row norm.

        d_m defaults to the table's width (a full-rank rotation, no reduction) and must lie between the backbone
        width and the table's width: the paper keeps "an intermediate size (e.g., 1536) ... significantly larger
        than the typical dimensionality of SRS embeddings" (before eq. 6), so the item matrix W_1 W_2 z has rank
        up to d, not d_m / 2 < d. `whiten`: W_1 starts as the PCA whitening of z (`start_adapter`), which the
        paper leaves open like the rest of the adapter's start."""
        d_m = d_m or table.dim
        if not width <= d_m <= table.dim:
            raise UserError(f"--d-m {d_m}: must be at least the backbone width ({width}) and at most the SCFT "
                            f"table's width ({table.dim}); the adapter's hidden layer is d_m / 2")
        rows = _padded_rows(table, dataset)
        pca = fit_pca(rows[1:], d_m)
        reduced = pca.transform(rows[1:])
        scale = max(float(np.linalg.norm(reduced, axis=1).mean()), 1e-12)
        adapter = cls(np.vstack([np.zeros((1, d_m), np.float32), reduced / scale]), width, whiten=whiten)
        adapter.pca, adapter.scale = pca, scale
        return adapter

    @property
    def weight(self) -> torch.Tensor:
        out = self.project(self.semantic[1:])
        return torch.cat([out.new_zeros(1, out.shape[1]), out], dim=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.project(self.semantic[ids])
        return out * (ids != 0).unsqueeze(-1).to(out.dtype)


def empty_adapter(state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> LLMEmbAdapter:
    """An adapter shaped like a saved one (its frozen embeddings are a buffer of the state dict, loaded after)."""
    hidden, width = state[prefix + "project.0.weight"].shape[0], state[prefix + "project.1.weight"].shape[0]
    return LLMEmbAdapter(torch.zeros(state[prefix + "semantic"].shape), width, hidden, start=False)


class CollaborativeAlignment(nn.Module):
    """RAT eqs. 7-8: alpha * L_align, L_align = L^1_align + L^2_align, between the adapted embeddings e_i and a
    pretrained SASRec's c_i over every target position of a step (eq. 7's S, "the sum of sequence lengths of
    one batch": a repeated item is one row per position).

    Each direction is -(1/S) sum_i [ sim(e_i, c_i) / gamma - log sum_{k: item_k != item_i} exp(sim(e_i, c_k) / gamma) ]:
    the positive is out of the denominator (eq. 7's I[i != k]), and so is every other position of the same item
    (its logit equals the positive's). `similarity` is the one the collaborative SASRec was trained with (the
    paper: the inner product of a BCE-trained SASRec), so both sides are compared as they were learned.

    Called by the seqrec trainer as `extra_loss(model=, items=, hidden=, targets=)`: `items` is the current
    item matrix [n_items + 1, d] (the adapter's `weight`), `targets` the step's target indices (0 = padding,
    ignored). Returns the weighted term alpha * L_align that the trainer adds to the recommendation loss
    (eq. 8; the paper sums the two directions, hence 2x `SymmetricInfoNCE`'s mean).
    """

    def __init__(
        self, collaborative: np.ndarray | torch.Tensor, alpha: float = 0.01, temperature: float = 2.0,
        similarity: str = "dot",
    ) -> None:
        super().__init__()
        self.part_name = "llmemb-alignment"  # a training-only part: a rebuilt model does not need it
        self.register_buffer("collaborative", torch.as_tensor(np.asarray(collaborative, dtype=np.float32)))
        self.alpha = alpha
        self.similarity = similarity
        self.loss = SymmetricInfoNCE(temperature, learnable=False, similarity=similarity, exclude_positive=True)

    @classmethod
    def from_table(
        cls, table: ItemTable, dataset: SequenceDataset, alpha: float = 0.01, temperature: float = 2.0,
        similarity: str = "auto",
    ) -> CollaborativeAlignment:
        """From the item table a pretrained SASRec run saved (RUN_DIR/item_table.npz); `similarity` "auto": the
        one of the loss that run trained with (its table's metadata), dot when it does not say."""
        if similarity == "auto":
            similarity = collaborative_similarity(table)
        return cls(_padded_rows(table, dataset), alpha, temperature, similarity)

    def forward(self, *, items: torch.Tensor, targets: torch.Tensor, **_: object) -> torch.Tensor:
        if items.shape[1] != self.collaborative.shape[1]:
            raise UserError(
                f"alignment needs equal widths: adapted items are {items.shape[1]}-d, "
                f"the pretrained SASRec's {self.collaborative.shape[1]}-d"
            )
        collaborative = self.collaborative.to(items.device)
        # every position of an item has the same two rows: the S x S loss is the U x U one weighted by counts
        unique, counts = torch.unique(targets[targets != 0], return_counts=True)
        if unique.numel() < 2:
            return items.sum() * 0.0
        return self.alpha * 2.0 * self.loss.grouped(items[unique], collaborative[unique], counts)


def collaborative_similarity(table: ItemTable) -> str:
    """How the SASRec behind `table` scored items in training: its loss's similarity (cosine for said_cosine)."""
    from semrec_worker.losses import LOSSES

    loss = table.metadata.get("loss")
    return LOSSES[loss].similarity if loss in LOSSES else "dot"


def scft_texts(dataset: SequenceDataset, settings: SCFTSettings) -> Sequence[str]:
    """The full prompts (no attribute dropped) that the final table embeds, for inspection."""
    domain = domain_of(dataset, settings.domain)
    return [item_prompt(item_attributes(i), domain, settings.max_value_chars) for i in dataset.items]
