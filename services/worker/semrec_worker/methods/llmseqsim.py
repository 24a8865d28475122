"""LLMSeqSim: next-item recommendation by semantic similarity of text embeddings, with no training.

Harte et al., "Leveraging Large Language Models for Sequential Recommendation" (RecSys'23), section 3.1
(the paper numbers no equations; the formulas below are its text written out). Every item i has a text
embedding e_i (an LLM embedding model over its text). A session s = (i_1..i_t) is embedded by one of the
paper's aggregations of its items' embeddings,

    mean (average):                     e_s = (1/t) sum_k e_{i_k}
    linear (weighted average):          e_s = sum_k w_k e_{i_k} / sum_k w_k,   w_k = k / t
    decay (weighted average):           e_s = sum_k w_k e_{i_k} / sum_k w_k,   w_k = lambda^(t - k)
    last (last item):                   e_s = e_{i_t}

("weighted average" = the paper's position-dependent linear and exponential decay: recent items weigh more),
and every catalogue item j is scored by one of the paper's similarity measures,

    cosine:     sim(s, j) = <e_s, e_j> / (|e_s| |e_j|)     (session = aggregation of unit item vectors)
    dot:        sim(s, j) = <e_s, e_j>                     (raw item vectors)
    euclidean:  sim(s, j) = -|e_s - e_j|                   (raw item vectors; nearer = higher)

For unit-norm item vectors (e.g. MiniLM's, normalised by the encoder) the three measures rank alike:
-|e_s - e_j|^2 = 2<e_s, e_j> - |e_s|^2 - 1. They differ for tables of other norms (PCA'd LLM2X, LH).

History rule: the same as every other method of the shared protocol. Items already in the history are
masked only when the evaluation masks them (`--exclude-history`, which keeps a repeated target rankable);
`skip_history` masks them in the model itself (the paper's session setting), a target in the history included.
The variant (aggregation x similarity) is chosen on the validation split (`select_on_valid`), never on test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from semrec.cli_builder import echo
from semrec.errors import UserError
from semrec.item_table import ItemTable

from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.data.text import caption
from semrec_worker.lm.backends import text_encoder
from semrec_worker.methods.llm_settings import SESSION_COMBINATIONS, SIMILARITIES

Combination = Literal["mean", "linear", "decay", "last"]
Similarity = Literal["cosine", "dot", "euclidean"]
SELECTION_METRIC = "ndcg@10"


class LLMSeqSim:
    """A `Recommender` over an item matrix (row 0 = padding)."""

    name = "llmseqsim"

    def __init__(
        self,
        item_vectors: np.ndarray,
        combine: Combination = "mean",
        similarity: Similarity = "cosine",
        decay: float = 0.8,
        window: int | None = None,
        skip_history: bool = False,
    ) -> None:
        if combine not in SESSION_COMBINATIONS:
            raise UserError(f"unknown session combination {combine!r} ({', '.join(SESSION_COMBINATIONS)})")
        if similarity not in SIMILARITIES:
            raise UserError(f"unknown similarity {similarity!r} ({', '.join(SIMILARITIES)})")
        if not 0 < decay <= 1:
            raise UserError(f"decay must be in (0, 1], got {decay}")
        raw = torch.as_tensor(np.asarray(item_vectors, dtype=np.float32)).clone()
        raw[0] = 0.0
        # cosine aggregates directions; dot and Euclidean work on the vectors as the table gives them
        self.items = torch.nn.functional.normalize(raw, dim=1) if similarity == "cosine" else raw
        self.combine = combine
        self.similarity = similarity
        self.decay = decay
        self.window = window
        self.skip_history = skip_history

    @property
    def variant(self) -> str:
        return f"{self.combine}-{self.similarity}"

    @classmethod
    def from_table(cls, table: ItemTable, dataset: SequenceDataset, **kwargs) -> LLMSeqSim:
        return cls(padded_matrix(table, dataset), **kwargs)

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
            elif self.combine == "linear":
                weight[row, :t] = torch.arange(1, t + 1, dtype=torch.float32) / t
            else:
                weight[row, :t] = self.decay ** torch.arange(t - 1, -1, -1, dtype=torch.float32)
        return index, weight

    def session_embeddings(self, histories: list[np.ndarray]) -> torch.Tensor:
        """e_s per history: the weighted average of its item vectors (unit-normalised for cosine)."""
        index, weight = self.session_weights(histories)
        summed = (self.items[index] * weight.unsqueeze(-1)).sum(1) / weight.sum(1, keepdim=True).clamp(min=1e-12)
        return torch.nn.functional.normalize(summed, dim=1) if self.similarity == "cosine" else summed

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        session = self.session_embeddings(histories)
        if self.similarity == "euclidean":
            scores = -torch.cdist(session, self.items)
        else:
            scores = session @ self.items.T
        if self.skip_history:  # the whole history, not just the window
            length = max((len(h) for h in histories), default=1) or 1
            seen = torch.zeros(len(histories), length, dtype=torch.long)
            for row, h in enumerate(histories):
                seen[row, : len(h)] = torch.as_tensor(np.asarray(h, dtype=np.int64))
            scores.scatter_(1, seen, -torch.inf)
        scores[:, 0] = -torch.inf
        return scores


def padded_matrix(table: ItemTable, dataset: SequenceDataset) -> np.ndarray:
    matrix, missing = table.aligned(dataset.item_ids)
    if missing:
        raise UserError(
            f"item table lacks {len(missing)} of the dataset's items (e.g. {missing[0]}); "
            "was it made for another dataset?"
        )
    return np.vstack([np.zeros((1, table.dim), np.float32), matrix])


@dataclass
class Selection:
    """The variant chosen on validation, and every variant's validation score."""

    model: LLMSeqSim
    valid_scores: dict[str, float]  # "<combine>-<similarity>" -> validation NDCG@10 (full ranking)
    wall_s: float

    @property
    def chosen(self) -> str:
        return self.model.variant

    def record(self) -> dict[str, Any]:
        return {"variant": self.chosen, "combine": self.model.combine, "similarity": self.model.similarity,
                "selected_on": f"valid {SELECTION_METRIC} (full ranking)", "valid_scores": self.valid_scores,
                "skip_history": self.model.skip_history}


def select_on_valid(
    table: ItemTable,
    dataset: SequenceDataset,
    combines: list[str],
    similarities: list[str],
    exclude_history: bool = False,
    **kwargs: Any,
) -> Selection:
    """Every aggregation x similarity scored on the validation split (full ranking, NDCG@10, the evaluation's
    history rule); the best one is returned (ties: the first in the order given). Test is never read."""
    from semrec_worker.evaluation.protocol import EvalSettings, evaluate  # torch only when it runs

    start = time.perf_counter()
    matrix = padded_matrix(table, dataset)
    settings = EvalSettings(protocol="full", exclude_history=exclude_history)
    scores: dict[str, float] = {}
    best: LLMSeqSim | None = None
    best_value = -1.0
    for combine in combines:
        for similarity in similarities:
            model = LLMSeqSim(matrix, combine=combine, similarity=similarity, **kwargs)  # type: ignore[arg-type]
            value = evaluate(model, dataset, "valid", settings).metrics[SELECTION_METRIC]
            scores[model.variant] = round(float(value), 6)
            echo(f"{dataset.name} llmseqsim {model.variant}: valid {SELECTION_METRIC}={value:.4f}")
            if value > best_value + 1e-9:  # a float-noise win is no win: ties keep the earlier variant
                best, best_value = model, value
    if best is None:
        raise UserError("no LLMSeqSim variant to choose from")
    return Selection(best, scores, time.perf_counter() - start)


def caption_table(dataset: SequenceDataset, encoder_spec: str) -> ItemTable:
    """LLMSeqSim's default item vectors: the text encoder's embeddings of the captions."""
    encoder = text_encoder(encoder_spec)
    vectors = encoder.embed([caption(item) for item in dataset.items])
    return ItemTable(dataset.item_ids, vectors, {"method": "text", "lm": encoder.name, "dataset": dataset.name,
                                                 "dataset_fingerprint": dataset.fingerprint})


def grid_reference(dataset: SequenceDataset, grid: Any) -> tuple[LLMSeqSim, str, dict[str, Any]]:
    """The quality grid's LLMSeqSim cell: `--tables llmseqsim=PATH` or the captions through `--text-encoder`;
    the session aggregation x similarity of `--llmseqsim-combine` x `--llmseqsim-similarity` with the best
    validation NDCG@10 (every variant's validation score is recorded in the cell's config)."""
    given = grid.table_paths().get("llmseqsim")
    if given is not None:
        table = ItemTable.load(given)
        source = str(table.metadata.get("method", "table"))
    else:
        table, source = caption_table(dataset, grid.text_encoder), grid.text_encoder
    selection = select_on_valid(table, dataset, list(grid.llmseqsim_combine), list(grid.llmseqsim_similarity),
                                exclude_history=grid.exclude_history)
    extra = {"embedding": source, "embedding_dim": table.dim, **selection.record()}
    return selection.model, f"llmseqsim-{selection.chosen}[{source}]", extra
