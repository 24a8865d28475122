"""Non-neural next-item baselines: session kNN (SKNN), vector-multiplication session kNN (V-SKNN) and windowed
item co-occurrence, after Ludewig & Jannach, "Evaluation of session-based recommendation algorithms"
(UMUAI 2018) and Ludewig et al., "Empirical analysis of session-based recommendation algorithms" (2021).

A "session" here is a user's sequence up to the evaluated split (train for validation, train + validation
item for test), as popularity counts it. The database holds every user's session; the session of the user
being scored (a database session identical to the query) is skipped, so a user is never its own neighbour.

SKNN: for the query session s (a set of items) and a database session n,
    sim(s, n) = |s & n| / sqrt(|s| |n|)                       (cosine of the binary item vectors)
    score(i)  = sum over the k most similar n of sim(s, n) [i in n]
V-SKNN: the query's items weigh by recency, w(p) for the p-th of |s| items (the most recent occurrence of a
repeated item counts), linear w = p / |s| or div w = 1 / (|s| - p + 1);
    sim(s, n) = sum_{i in s & n} w(i)                          (Ludewig et al.'s `vec` similarity, up to 1/|s|)
    score(i)  = sum over the k most similar n of sim(s, n) [i in n]
Co-occurrence (sequential rules, windowed): C[a, b] = sum over training sequences of 1 / (q - p) for every
pair a at position p, b at position q with 0 < q - p <= window (both directions with `symmetric`);
    score(b) = sum_{j < history} decay^j C[h_{t-j}, b]       (the last `history` items of the query)

Every database session (and neighbour candidate) is used: Ludewig et al.'s recent-sessions sampling needs a
global clock, which leave-one-out data orders only within a user. Items with no kNN/co-occurrence score would
all tie (and ties rank pessimistically), so `popularity_tiebreak` adds 1e-6 x popularity / max popularity,
below any real score difference: it orders only the ties. Scores are float64 so that the tie-break survives.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp
import torch
from semrec.errors import UserError

from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.models.knn_settings import settings_for

Weighting = Literal["linear", "div"]
TIEBREAK = 1e-6


def sessions_before(dataset: SequenceDataset, split: str) -> list[np.ndarray]:
    """What a model may see before `split`: s[:-2] for validation, s[:-1] for test (the popularity cut)."""
    if split not in ("valid", "test"):
        raise UserError(f"unknown split {split!r} (valid or test)")
    cut = -2 if split == "valid" else -1
    return [np.asarray(s[:cut], dtype=np.int64) for s in dataset.sequences]


def _counts(sessions: list[np.ndarray], n_items: int) -> np.ndarray:
    flat = np.concatenate(sessions) if sessions else np.zeros(0, np.int64)
    return np.bincount(flat, minlength=n_items + 1).astype(np.float64)


def _concat(parts: list[np.ndarray], dtype: type = np.int64) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


class _SessionModel:
    """What the baselines share: fitting on the sessions before a split, and the popularity tie-break."""

    n_items: int
    tiebreak: torch.Tensor | None

    def _set_tiebreak(self, sessions: list[np.ndarray], enabled: bool) -> None:
        counts = _counts(sessions, self.n_items)
        self.tiebreak = torch.from_numpy(TIEBREAK * counts / max(float(counts.max()), 1.0)) if enabled else None

    @classmethod
    def fit(cls, dataset: SequenceDataset, split: str = "test", **settings: Any) -> Self:
        return cls(sessions_before(dataset, split), dataset.n_items, **settings)

    def _finish(self, scores: torch.Tensor) -> torch.Tensor:
        """Add the tie-break; padding (index 0) is never recommended."""
        if self.tiebreak is not None:
            scores = scores + self.tiebreak
        scores[:, 0] = -torch.inf
        return scores


def recency_weights(history: np.ndarray, weighting: str) -> dict[int, float]:
    """item -> weight of its most recent occurrence in `history` (position p = 1..t, t the most recent)."""
    t = len(history)
    out: dict[int, float] = {}
    for p, item in enumerate(history.tolist(), start=1):
        out[item] = p / t if weighting == "linear" else 1.0 / (t - p + 1)
    return out


class SessionKNN(_SessionModel):
    """SKNN (`weighting=None`) or V-SKNN (`weighting="linear"|"div"`) over a database of sessions."""

    def __init__(self, sessions: list[np.ndarray], n_items: int, k: int = 100, weighting: Weighting | None = None,
                 popularity_tiebreak: bool = True) -> None:
        if k < 1:
            raise UserError(f"k must be >= 1, got {k}")
        if weighting not in (None, "linear", "div"):
            raise UserError(f"unknown weighting {weighting!r} (linear or div)")
        self.n_items, self.k, self.weighting = n_items, k, weighting
        self.name = "sknn" if weighting is None else "vsknn"
        rows, cols = [], []
        self._by_content: dict[bytes, list[int]] = {}
        for row, session in enumerate(sessions):
            unique = np.unique(session)
            rows.append(np.full(len(unique), row)), cols.append(unique)
            self._by_content.setdefault(np.asarray(session, np.int64).tobytes(), []).append(row)
        rows_a, cols_a = _concat(rows), _concat(cols)
        self.database = sp.csr_matrix((np.ones(len(rows_a)), (rows_a, cols_a)), shape=(len(sessions), n_items + 1))
        self.session_sizes = np.asarray(self.database.sum(axis=1)).ravel()
        self._set_tiebreak(sessions, popularity_tiebreak)

    def similarities(self, histories: list[np.ndarray]) -> np.ndarray:
        """[B, n_sessions] similarity of each query to each database session (its own session: -inf)."""
        query = sp.lil_matrix((len(histories), self.n_items + 1))
        for row, history in enumerate(histories):
            history = np.asarray(history, dtype=np.int64)
            if self.weighting is None:
                for item in np.unique(history).tolist():
                    query[row, item] = 1.0
            else:
                for item, weight in recency_weights(history, self.weighting).items():
                    query[row, item] = weight
        sims = np.asarray((query.tocsr() @ self.database.T).todense(), dtype=np.float64)
        if self.weighting is None:
            sizes = np.array([len(np.unique(h)) for h in histories], dtype=np.float64)
            sims /= np.sqrt(np.maximum(sizes, 1.0))[:, None] * np.sqrt(np.maximum(self.session_sizes, 1.0))[None, :]
        for row, history in enumerate(histories):
            for own in self._by_content.get(np.asarray(history, np.int64).tobytes(), []):
                sims[row, own] = -np.inf
        return sims

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        sims = self.similarities(histories)
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k else np.zeros((len(sims), 0), np.int64)
        weights = np.zeros_like(sims)
        chosen = np.take_along_axis(sims, top, axis=1)
        np.put_along_axis(weights, top, np.where(np.isfinite(chosen) & (chosen > 0), chosen, 0.0), axis=1)
        return self._finish(torch.from_numpy(np.asarray(self.database.T @ weights.T).T.copy()))


class CooccurrenceRecommender(_SessionModel):
    """Windowed item co-occurrence (sequential rules): see the module docstring."""

    name = "cooc"

    def __init__(self, sessions: list[np.ndarray], n_items: int, window: int = 3, history: int = 1,
                 decay: float = 0.5, symmetric: bool = False, popularity_tiebreak: bool = True) -> None:
        if window < 1 or history < 1:
            raise UserError(f"window and history must be >= 1, got {window}, {history}")
        if not 0 < decay <= 1:
            raise UserError(f"decay must be in (0, 1], got {decay}")
        self.n_items, self.history, self.decay = n_items, history, decay
        sources, targets, weights = [], [], []
        for session in sessions:
            session = np.asarray(session, dtype=np.int64)
            for gap in range(1, min(window, len(session) - 1) + 1):
                sources.append(session[:-gap]), targets.append(session[gap:])
                weights.append(np.full(len(session) - gap, 1.0 / gap))
        src, dst, w = _concat(sources), _concat(targets), _concat(weights, np.float64)
        if symmetric:
            src, dst, w = np.concatenate([src, dst]), np.concatenate([dst, src]), np.concatenate([w, w])
        self.matrix = sp.csr_matrix((w, (src, dst)), shape=(n_items + 1, n_items + 1))  # duplicates are summed
        self._set_tiebreak(sessions, popularity_tiebreak)

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        query = sp.lil_matrix((len(histories), self.n_items + 1))
        for row, history in enumerate(histories):
            for j, item in enumerate(np.asarray(history, dtype=np.int64)[::-1][: self.history].tolist()):
                query[row, item] += self.decay**j
        return self._finish(torch.from_numpy(np.asarray((query.tocsr() @ self.matrix).todense(), dtype=np.float64)))


# the quality grid's cells: the settings chosen on the dataset's own validation split, else the defaults


def sknn_reference(dataset: SequenceDataset, grid: object) -> tuple[SessionKNN, str, dict]:
    settings = settings_for("sknn", dataset.name)
    return SessionKNN.fit(dataset, "test", **settings), "sknn", settings


def vsknn_reference(dataset: SequenceDataset, grid: object) -> tuple[SessionKNN, str, dict]:
    settings = settings_for("vsknn", dataset.name)
    return SessionKNN.fit(dataset, "test", **settings), "vsknn", settings


def cooc_reference(dataset: SequenceDataset, grid: object) -> tuple[CooccurrenceRecommender, str, dict]:
    settings = settings_for("cooc", dataset.name)
    return CooccurrenceRecommender.fit(dataset, "test", **settings), "cooc", settings
