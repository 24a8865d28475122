"""BERT4Rec (Sun et al., CIKM 2019, "BERT4Rec: Sequential Recommendation with Bidirectional Encoder
Representations from Transformer").

Bidirectional self-attention over item embeddings + learned positions (sec. 3.3-3.4). Training is the cloze
task (sec. 3.6): a random share rho (`mask_prob`) of the items of each training sequence is replaced by a
[mask] token and predicted from both sides; a sequence with no item drawn gets its last item masked.
Inference (sec. 3.6): append [mask] after the history and read the output at that position as h_s, so the
input [B, W] keeps its last W - 1 items plus the mask. Output scoring uses the shared item embeddings (the
paper's output projection + bias are folded into the loss's dot product / cosine).

`final_position` (what serving exports) computes the last block for the [mask] position only (SASRec.encode_last):
the earlier blocks are bidirectional and need every position, the last one only the row that is read.

The [mask] token has its own learned vector (`mask_embedding`), so the item layer stays a plain
[n_items + 1, dim] matrix that any ItemTable can initialise.

Training takes many more epochs than SASRec's (Petrov & Macdonald, RecSys'22): the masked position sees the
items only through attention, and the model sits at popularity level for tens of epochs before it uses the
context. rho defaults to 0.6, the paper's value for sparse Amazon data (0.2 for MovieLens); docs/seqrec.md
("Calibration") has the validation runs behind it and the epochs/patience BERT4Rec needs.
"""

from __future__ import annotations

import torch
from torch import nn

from semrec_worker.backbones.sasrec import SASRec


class BERT4Rec(SASRec):
    name = "bert4rec"
    causal = False

    def __init__(
        self,
        item_embedding: nn.Module,
        max_len: int = 50,
        num_layers: int = 1,
        num_heads: int = 1,
        dropout: float = 0.2,
        mask_prob: float = 0.6,
        **_: object,
    ) -> None:
        super().__init__(item_embedding, max_len, num_layers, num_heads, dropout)
        if not 0 < mask_prob < 1:
            raise ValueError("mask_prob must be in (0, 1)")
        self.mask_prob = mask_prob
        self.mask_embedding = nn.Parameter(torch.randn(self.dim) * self.dim**-0.5)

    def masked_inputs(self, item_ids: torch.Tensor, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings with [mask] where `masked`, the positions that are real or masked)."""
        visible = torch.where(masked, torch.zeros_like(item_ids), item_ids)
        embeddings = torch.where(masked.unsqueeze(-1), self.mask_embedding / self.scale, self.embed(visible))
        return embeddings, (item_ids != 0) | masked

    def masked_encode(self, item_ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        return self.encode(*self.masked_inputs(item_ids, masked), causal=False)

    def with_appended_mask(self, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inference input (sec. 3.6): the last W - 1 items, then [mask] in the last column."""
        shifted = torch.cat([item_ids[:, 1:], torch.zeros_like(item_ids[:, :1])], dim=1)
        columns = torch.arange(shifted.shape[1], device=shifted.device)
        masked = (columns == shifted.shape[1] - 1).unsqueeze(0).expand_as(shifted)
        return shifted, masked

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.masked_encode(*self.with_appended_mask(item_ids))[:, -1]

    def final_position(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.encode_last(*self.masked_inputs(*self.with_appended_mask(item_ids)), causal=False)

    def sequence_output(self, item_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("BERT4Rec is bidirectional: use forward() (h_s) or training_pairs()")

    def cloze(self, windows: torch.Tensor, noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(sequence [B, W], masked [B, W]): the training sequence and its masked positions."""
        sequence = windows[:, -self.max_len :]
        if noise is None:
            noise = torch.rand(windows.shape, device=windows.device)
        real = sequence != 0
        masked = real & (noise[:, -sequence.shape[1] :] < self.mask_prob)
        nothing = ~masked.any(dim=1)
        masked[nothing, -1] = real[nothing, -1]
        return sequence, masked

    def training_pairs(
        self, windows: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sequence, masked = self.cloze(windows, noise)
        hidden = self.masked_encode(sequence, masked)
        return hidden[masked], sequence[masked]

    def training_history(self, windows: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Bidirectional: a masked position's history is the sequence the model sees, its unmasked items (the
        same `noise` gives the same masks as `training_pairs`)."""
        sequence, masked = self.cloze(windows, noise)
        visible = torch.where(masked, torch.zeros_like(sequence), sequence)
        return visible.unsqueeze(1).expand(-1, sequence.shape[1], -1)[masked]

    def training_last_item(self, windows: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The nearest visible item before each masked position (0: none), the place of the history's most
        recent item at inference, just before the appended [mask]."""
        sequence, masked = self.cloze(windows, noise)
        visible = torch.where(masked, torch.zeros_like(sequence), sequence)
        columns = torch.arange(sequence.shape[1], device=sequence.device).expand_as(sequence)
        latest = torch.where(visible != 0, columns, torch.full_like(columns, -1)).cummax(dim=1).values
        before = torch.cat([torch.full_like(latest[:, :1], -1), latest[:, :-1]], dim=1)
        last = visible.gather(1, before.clamp(min=0)) * (before >= 0)
        return last[masked]

    def visible_items(self, item_ids: torch.Tensor) -> torch.Tensor:
        return item_ids[:, 1:]  # `forward` drops the first column for the appended [mask]
