"""SAID: semantically aligned item embeddings learnt through a frozen causal LM (stage 1).

Hu et al., "Enhancing Sequential Recommendation via LLM-based Semantic Embedding Learning",
WWW'24 companion, section 2.2.2. As we read its equations:

    (1)  e_i = f_theta(i)                                  the projector maps item i to its embedding
    (2)  x_i = [ instruction ; e_i ; t_1 ... t_{|T_i|} ]   e_i is fed to the LLM as a prefix (soft prompt)
                                                            before the caption tokens T_i of the item
    (3)  L(theta) = - sum_i sum_j log p_LLM(t_j | instruction, e_i, t_<j)
                                                            teacher-forced next-token cross-entropy over the
                                                            caption tokens only; the LLM is frozen and only
                                                            theta is trained (gradients flow through the LLM)
    (4)  stage 2 initialises a sequential recommender's item embeddings with the learnt e_i
         (`semrec train seqrec --init RUN_DIR/item_table.npz`).

The paper's f_theta is a lookup table of one token-width vector per item ("the size of the learned
embedding for each attribute equates to the embedding size of a single token"); we allow K virtual tokens
per item (one per attribute, or simply more capacity). Two projectors:

- `PrefixTable` (the paper's; default on GPU): one row of K x width per item, initialised from the mean
  token embedding of the item's caption (or at random), updated sparsely (SparseAdam), so rows absent
  from a batch do not move.
- `AmortisedPrefix` (default on CPU): a small MLP from the caption's mean token embedding to the K prefix
  vectors, plus a per-item residual row (sparse updates). The MLP shares what it learns across items, so
  far fewer passes per item are needed (see docs/said.md), and a new item gets a prefix from its text
  with no training at all.

Generation accuracy (paper section 3.3, Figure 3) greedily decodes each item's caption from its prefix
alone and compares words: `semrec_worker.methods.said.generation`. The training loop (buckets, checkpoints, early
stop, progress) lives in `semrec_worker.methods.said.trainer`; this module holds the method itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from semrec_worker.methods.said.settings import ProjectorKind, SAIDSettings

__all__ = ["SAIDSettings", "PrefixTable", "AmortisedPrefix", "caption_loss", "build_projector"]


def resolve_projector(kind: ProjectorKind, device: torch.device) -> Literal["table", "amortised"]:
    if kind != "auto":
        return kind
    return "table" if device.type == "cuda" else "amortised"


class PrefixTable(nn.Module):
    """f_theta as the paper's lookup table: item row -> K prefix vectors (eq. 1)."""

    def __init__(self, init: torch.Tensor, virtual_tokens: int) -> None:
        super().__init__()
        n_items, width = init.shape
        self.virtual_tokens, self.width = virtual_tokens, width
        self.rows = nn.Embedding(n_items, virtual_tokens * width, sparse=True)
        with torch.no_grad():
            self.rows.weight.copy_(init.repeat(1, virtual_tokens))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.rows(rows).view(-1, self.virtual_tokens, self.width)

    def shared_parameters(self) -> list[nn.Parameter]:
        return []


class AmortisedPrefix(nn.Module):
    """f_theta(i) = base_i + MLP(c_i) + r_i, with c_i the mean token embedding of item i's caption.

    base_i is c_i itself (init "mean") or zero (init "random", then r_i starts random). The MLP's last layer
    starts at zero, so training starts exactly from the table's initialisation.
    """

    def __init__(self, features: torch.Tensor, virtual_tokens: int, hidden: int, init: str, seed: int = 0) -> None:
        super().__init__()
        n_items, width = features.shape
        self.virtual_tokens, self.width = virtual_tokens, width
        self.register_buffer("features", features.clone(), persistent=True)
        self.use_base = init == "mean"
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, virtual_tokens * width))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.residual = nn.Embedding(n_items, virtual_tokens * width, sparse=True)
        with torch.no_grad():
            if self.use_base:
                self.residual.weight.zero_()
            else:
                self.residual.weight.copy_(random_rows(n_items, virtual_tokens * width, features, seed))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        c = self.features[rows]
        out = self.mlp(c) + self.residual(rows)
        if self.use_base:
            out = out + c.repeat(1, self.virtual_tokens)
        return out.view(-1, self.virtual_tokens, self.width)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.mlp.parameters())


def random_rows(n: int, dim: int, reference: torch.Tensor, seed: int) -> torch.Tensor:
    """Random rows with the spread of the LM's token embeddings (the paper's alternative init)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=generator) * reference.std().clamp_min(1e-3)


def build_projector(
    kind: Literal["table", "amortised"], features: torch.Tensor, settings: SAIDSettings, seed: int = 0
) -> PrefixTable | AmortisedPrefix:
    if kind == "table":
        init = features if settings.prefix_init == "mean" else random_rows(*features.shape, features, seed)
        return PrefixTable(init, settings.virtual_tokens)
    return AmortisedPrefix(features, settings.virtual_tokens, settings.projector_hidden, settings.prefix_init, seed)


def row_parameters(projector: nn.Module) -> list[nn.Parameter]:
    """The per-item rows (sparse gradients, SparseAdam)."""
    return [projector.rows.weight] if isinstance(projector, PrefixTable) else [projector.residual.weight]


def caption_features(lm: nn.Module, captions: Sequence[Sequence[int]]) -> torch.Tensor:
    """c_i: the mean input-token embedding of each caption (EOS excluded), float32 [n, width]."""
    table = lm.get_input_embeddings().weight.detach().float()
    out = torch.empty(len(captions), table.shape[1])
    for i, ids in enumerate(captions):
        ids = list(ids[:-1]) or list(ids)
        out[i] = table[torch.as_tensor(ids)].mean(0)
    return out


def caption_loss(
    lm: nn.Module,
    prefix: torch.Tensor,
    instruction: torch.Tensor,
    captions: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3 on a batch: mean next-token CE over caption tokens only, given [instruction; prefix] (eq. 2).

    prefix [B, K, width]; instruction [L, width] (token embeddings, may be empty); captions [B, T] token ids
    right-padded (padding masked out by `mask` [B, T], so no attention mask is needed: with causal
    attention, right padding never influences the real positions). Returns (loss, correct-token count).
    The LM head runs only on the caption positions.
    """
    batch = captions.shape[0]
    embed = lm.get_input_embeddings()
    caption_embeds = embed(captions[:, :-1])
    dtype = caption_embeds.dtype
    parts = [instruction.to(dtype).expand(batch, -1, -1), prefix.to(dtype), caption_embeds]
    inputs = torch.cat(parts, dim=1)
    hidden = lm.base_model(inputs_embeds=inputs, use_cache=False).last_hidden_state
    first = instruction.shape[0] + prefix.shape[1] - 1  # the position that predicts caption token 0
    targets_hidden = hidden[:, first:][mask]
    logits = lm.get_output_embeddings()(targets_hidden).float()
    targets = captions[mask]
    loss = F.cross_entropy(logits, targets)
    correct = (logits.argmax(-1) == targets).sum()
    return loss, correct


def freeze(lm: nn.Module) -> nn.Module:
    """The LLM is frozen (requires_grad False) but stays differentiable w.r.t. its inputs."""
    lm.eval()
    for param in lm.parameters():
        param.requires_grad_(False)
    return lm


def prefixes_for_table(projector: nn.Module, n_items: int, how: str, chunk: int = 1024) -> torch.Tensor:
    """All items' prefixes as item-table rows: [n, K*width] ('concat') or [n, width] ('mean')."""
    out = []
    with torch.no_grad():
        for start in range(0, n_items, chunk):
            rows = torch.arange(start, min(start + chunk, n_items), device=projector_device(projector))
            prefix = projector(rows).float()
            out.append((prefix.flatten(1) if how == "concat" else prefix.mean(1)).cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def projector_device(projector: nn.Module) -> torch.device:
    return next(projector.parameters()).device
