"""LLMSeqSim: next-item recommendation by semantic similarity of text embeddings, with no training.

Harte et al., "Leveraging Large Language Models for Sequential Recommendation" (RecSys'23), section 3.1:
every item i has a text embedding e_i (an LLM embedding model over its text). A session s = (i_1..i_t) is
embedded by combining its items' embeddings,

    mean:   e_s = (1/t) sum_k e_{i_k}
    last:   e_s = e_{i_t}
    decay:  e_s = sum_k w_k e_{i_k} / sum_k w_k,   w_k = lambda^(t - k)   (recent items weigh more)

and items are ranked by cosine(e_s, e_j) over the whole catalogue. Items already in the session are not
recommended again (`skip_history`, as in the paper's session setting): they are the most similar to the
session by construction and would crowd out everything else.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable

from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.data.text import caption
from semrec_worker.lm.backends import text_encoder

Combination = Literal["mean", "last", "decay"]


class LLMSeqSim:
    """A `Recommender` over an L2-normalised item matrix (row 0 = padding)."""

    name = "llmseqsim"

    def __init__(
        self,
        item_vectors: np.ndarray,
        combine: Combination = "mean",
        decay: float = 0.8,
        window: int | None = None,
        skip_history: bool = True,
    ) -> None:
        if combine not in ("mean", "last", "decay"):
            raise UserError(f"unknown session combination {combine!r} (mean, last or decay)")
        if not 0 < decay <= 1:
            raise UserError(f"decay must be in (0, 1], got {decay}")
        vectors = torch.as_tensor(np.asarray(item_vectors, dtype=np.float32))
        self.items = torch.nn.functional.normalize(vectors, dim=1)
        self.items[0] = 0.0
        self.combine = combine
        self.decay = decay
        self.window = window
        self.skip_history = skip_history

    @classmethod
    def from_table(cls, table: ItemTable, dataset: SequenceDataset, **kwargs) -> LLMSeqSim:
        matrix, missing = table.aligned(dataset.item_ids)
        if missing:
            raise UserError(
                f"item table lacks {len(missing)} of the dataset's items (e.g. {missing[0]}); "
                "was it made for another dataset?"
            )
        padded = np.vstack([np.zeros((1, table.dim), np.float32), matrix])
        return cls(padded, **kwargs)

    def session_weights(self, histories: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-aligned item indices [B, L] and combination weights [B, L] (0 on padding)."""
        if self.window is not None:
            histories = [h[-self.window :] for h in histories]
        length = max((len(h) for h in histories), default=1) or 1
        index = torch.zeros(len(histories), length, dtype=torch.long)
        weight = torch.zeros(len(histories), length)
        for row, h in enumerate(histories):
            t = len(h)
            if t == 0:
                continue
            index[row, :t] = torch.as_tensor(np.asarray(h, dtype=np.int64))
            if self.combine == "mean":
                weight[row, :t] = 1.0
            elif self.combine == "last":
                weight[row, t - 1] = 1.0
            else:
                weight[row, :t] = self.decay ** torch.arange(t - 1, -1, -1, dtype=torch.float32)
        return index, weight

    def session_embeddings(self, histories: list[np.ndarray]) -> torch.Tensor:
        index, weight = self.session_weights(histories)
        summed = (self.items[index] * weight.unsqueeze(-1)).sum(1) / weight.sum(1, keepdim=True).clamp(min=1e-12)
        return torch.nn.functional.normalize(summed, dim=1)

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        scores = self.session_embeddings(histories) @ self.items.T
        if self.skip_history:  # the whole history, not just the window
            length = max((len(h) for h in histories), default=1) or 1
            seen = torch.zeros(len(histories), length, dtype=torch.long)
            for row, h in enumerate(histories):
                seen[row, : len(h)] = torch.as_tensor(np.asarray(h, dtype=np.int64))
            scores.scatter_(1, seen, -torch.inf)
        scores[:, 0] = -torch.inf
        return scores


def caption_table(dataset: SequenceDataset, encoder_spec: str) -> ItemTable:
    """LLMSeqSim's default item vectors: the text encoder's embeddings of the captions."""
    encoder = text_encoder(encoder_spec)
    vectors = encoder.embed([caption(item) for item in dataset.items])
    return ItemTable(dataset.item_ids, vectors, {"method": "text", "lm": encoder.name, "dataset": dataset.name,
                                                 "dataset_fingerprint": dataset.fingerprint})


def grid_reference(dataset: SequenceDataset, grid: Any) -> tuple[LLMSeqSim, str, dict[str, Any]]:
    """The quality grid's LLMSeqSim cell: `--tables llmseqsim=PATH` or the captions through `--text-encoder`,
    ranked by the session embedding `--llmseqsim-combine`."""
    given = grid.table_paths().get("llmseqsim")
    if given is not None:
        table = ItemTable.load(given)
        source = str(table.metadata.get("method", "table"))
    else:
        table, source = caption_table(dataset, grid.text_encoder), grid.text_encoder
    model = LLMSeqSim.from_table(table, dataset, combine=grid.llmseqsim_combine)
    extra = {"embedding": source, "embedding_dim": table.dim, "combine": grid.llmseqsim_combine}
    return model, f"llmseqsim-{grid.llmseqsim_combine}[{source}]", extra

