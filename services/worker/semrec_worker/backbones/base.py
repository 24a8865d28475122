"""The `SequenceEncoder` protocol every backbone implements, and the pluggable item-embedding layer.

A sequence encoder maps item-index sequences, left-padded with 0 to a common width W <= max_len
(index k >= 1 is `dataset.item_ids[k - 1]`), to one vector h_s per sequence:

    encoder(item_ids [B, W]) -> h_s [B, dim]
    encoder.final_position(item_ids [B, W]) -> h_s [B, dim]   (the same h_s, what the ranker serves via ONNX)

`forward` is the reference computation (every position, then the last one's output); `final_position`
computes only what h_s depends on (the Transformers' last block for one query row: `semrec export onnx`
exports it). The two agree to float rounding (tested per backbone and item layer).

For training it exposes `training_pairs(windows, noise) -> (hidden [N, dim], targets [N])`: for a batch of
training windows (left-padded chronological item indices, width <= max_len + 1) it returns the
representations that must predict each target. Causal models (GRU4Rec, SASRec) predict every next item from
its prefix (per-prefix samples in one pass); BERT4Rec predicts masked items (cloze). `noise` is a uniform
[0, 1) tensor of the windows' shape that a backbone may use for its random choices (BERT4Rec's masking);
drawing it outside the model keeps data-parallel training identical to single-process training.

Item embedding layer (`encoder.item_embedding`): any `nn.Module` with
- `weight`: the full item matrix, a tensor [n_items + 1, dim] (row 0 = padding, never a candidate), and
- `forward(ids) -> [*, dim]` looking rows up.
`nn.Embedding` qualifies; so do `TableProjection` (a frozen ItemTable through a trainable linear map) and any
adapter another method brings (e.g. LLMEmb's two-layer adapter over frozen LM embeddings). Backbones zero
the padding positions themselves, so row 0's value never matters.

History bias (`--history-bias learned|learned_last`, `enable_history_bias`): a trained scalar `history_bias`
b that the scoring adds to every item already in the sequence, once per item however often it occurs, and
with `learned_last` a second one, `last_item_bias` b_last, added to the most recent item:

    score(i | s_{<=t}) = sim(h_t, e_i) + b * [i in {x_1..x_t}] + b_last * [i = x_t]

The backbone only says which items count as a prediction's history: `training_history` (causal: the items
at positions <= t of the window; BERT4Rec: the visible, unmasked items of the sequence), `training_last_item`
(causal: x_t; BERT4Rec: the nearest visible item before the masked position) and `visible_items` (at
inference: the items the encoder reads for h_s, the last column being the most recent). The losses and the
recommender add the biases (`semrec_worker.losses.base.HistoryShift`).
"""

from __future__ import annotations

import torch
from torch import nn


class SequenceEncoder(nn.Module):
    """Base class: subclasses implement `sequence_output` (causal) or override `forward`/`training_pairs`."""

    name: str = "base"
    causal: bool = True

    def __init__(self, item_embedding: nn.Module, max_len: int) -> None:
        super().__init__()
        weight = item_embedding.weight
        if weight.ndim != 2:
            raise ValueError("item_embedding.weight must be a matrix [n_items + 1, dim]")
        self.item_embedding = item_embedding
        self.n_items = int(weight.shape[0]) - 1
        self.dim = int(weight.shape[1])
        self.max_len = max_len
        self.register_parameter("history_bias", None)
        self.register_parameter("last_item_bias", None)

    def enable_history_bias(self, last_item: bool = False) -> None:
        """Give the model its learned history bias b (a scalar, initialised to 0), and with `last_item` the
        most recent item's extra bias b_last (likewise)."""
        weight = self.item_embedding.weight
        self.history_bias = nn.Parameter(torch.zeros((), dtype=weight.dtype, device=weight.device))
        if last_item:
            self.last_item_bias = nn.Parameter(torch.zeros((), dtype=weight.dtype, device=weight.device))

    def embed(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Item vectors for `item_ids` with padding positions set to zero."""
        return self.item_embedding(item_ids) * (item_ids != 0).unsqueeze(-1).to(self.item_embedding.weight.dtype)

    def sequence_output(self, item_ids: torch.Tensor) -> torch.Tensor:
        """[B, W, dim]: the representation after each position (causal backbones)."""
        raise NotImplementedError

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """h_s [B, dim] for left-padded histories [B, W] (the last column is the most recent item)."""
        return self.sequence_output(item_ids)[:, -1]

    def final_position(self, item_ids: torch.Tensor) -> torch.Tensor:
        """h_s [B, dim] as `forward`, computing only what the last position's output depends on (a backbone
        without a cheaper way inherits `forward`)."""
        return self.forward(item_ids)

    def training_pairs(
        self, windows: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal default: position j of `windows[:, :-1]` predicts `windows[:, j + 1]` (skipping padding)."""
        inputs, targets = windows[:, :-1], windows[:, 1:]
        hidden = self.sequence_output(inputs)
        keep = inputs != 0
        return hidden[keep], targets[keep]

    def training_history(self, windows: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """[N, W] item indices (0 = none) of each `training_pairs` position's history, in the same order:
        causal, position t sees the window's items at positions <= t."""
        inputs = windows[:, :-1]
        width = inputs.shape[1]
        causal = torch.ones(width, width, dtype=torch.bool, device=inputs.device).tril()
        prefixes = inputs.unsqueeze(1) * causal.unsqueeze(0)  # [B, t, k]: item k when k <= t
        return prefixes[inputs != 0]

    def training_last_item(self, windows: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """[N] the most recent history item of each `training_pairs` position (causal: the item at t)."""
        inputs = windows[:, :-1]
        return inputs[inputs != 0]

    def visible_items(self, item_ids: torch.Tensor) -> torch.Tensor:
        """The items of a left-padded batch [B, W] that `forward` reads for h_s (the inference history)."""
        return item_ids

    def positions(self, width: int, device: torch.device) -> torch.Tensor:
        """Absolute position of each column of a width-W left-padded batch: the last column is max_len - 1,
        so a batch trimmed to its longest sequence and the full max_len padding give identical outputs."""
        if width > self.max_len:
            raise ValueError(f"sequence width {width} exceeds max_len {self.max_len}")
        return torch.arange(width, device=device) + (self.max_len - width)


def input_width(longest: int, max_len: int) -> int:
    """Columns needed to encode histories of up to `longest` items: one spare column for BERT4Rec's appended
    [mask] (harmless for the others), capped at max_len, which serving always uses."""
    return max(1, min(max_len, longest + 1))


def left_pad(sequences: list, width: int) -> torch.Tensor:
    """Left-pad (and left-truncate) integer sequences to `width` columns with 0."""
    out = torch.zeros(len(sequences), width, dtype=torch.long)
    for row, seq in enumerate(sequences):
        tail = torch.as_tensor(seq[-width:] if width else seq[:0], dtype=torch.long)
        if len(tail):
            out[row, width - len(tail) :] = tail
    return out
