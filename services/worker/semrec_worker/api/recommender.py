"""`Recommender`: a trained seqrec run as a Python object, on CPU, without Redis or a server.

It scores exactly as the run's model does (the loss's dot product or cosine, see `losses/base.py`), and,
like the ranker, skips history items it does not know, falls back to the most popular items for a history
with no known item, and by default never recommends what the history already holds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from semrec.errors import UserError

from semrec_worker.api.dataset import Dataset
from semrec_worker.backbones import SequenceEncoder
from semrec_worker.training.recommender import SeqRecRecommender

if TYPE_CHECKING:
    import pandas as pd

Histories = Sequence[Sequence[str]]
SCORE_BATCH = 1024  # histories scored at once: bounds the [batch, n_items] score matrix


class Recommender:
    """Next-item recommendations and similar items from one trained run."""

    def __init__(
        self,
        encoder: SequenceEncoder,
        item_ids: list[str],
        similarity: str,
        popularity: np.ndarray | None = None,
        dataset: Dataset | None = None,
        data_settings: dict[str, Any] | None = None,
    ) -> None:
        self.encoder = encoder.eval()
        self.item_ids = list(item_ids)
        self.similarity = similarity
        self.index = {item_id: i + 1 for i, item_id in enumerate(self.item_ids)}  # 0 is padding
        self.popularity = popularity if popularity is not None else np.zeros(len(self.item_ids), np.float32)
        self._scorer = SeqRecRecommender(encoder, similarity, torch.device("cpu"))
        self._dataset = dataset
        self._data_settings = data_settings
        self._histories: dict[str, list[str]] | None = None

    @classmethod
    def from_run(cls, run_dir: str | Path, dataset: Dataset | None = None) -> Recommender:
        """Load a finished `semrec train seqrec` run (model.pt, item_table.npz, config.json, metrics.json).

        `dataset` supplies user histories (for `recommend(users=...)`) and titles; by default the run's own
        dataset is read from its config when first needed.
        """
        from semrec_worker.export.onnx import load_run_encoder

        run_dir = Path(run_dir)
        encoder, config, table, metrics = load_run_encoder(run_dir)
        popularity_path = run_dir / "popularity.npy"
        popularity = np.load(popularity_path) if popularity_path.exists() else None
        settings = {k: getattr(config, k) for k in ("data", "format", "kcore", "history_cap", "drop_unknown_items")}
        return cls(encoder, table.ids, metrics["model"]["similarity"], popularity, dataset, settings)

    # ------------------------------------------------------------------------------------------- data

    @property
    def dataset(self) -> Dataset:
        """The dataset of user histories and titles (the run's own unless another was given)."""
        if self._dataset is None:
            if not self._data_settings:
                raise UserError("this recommender has no dataset: pass dataset= to from_run")
            self._dataset = Dataset.from_path(**self._data_settings)
        return self._dataset

    def user_histories(self) -> dict[str, list[str]]:
        if self._histories is None:
            self._histories = self.dataset.histories()
        return self._histories

    def titles(self) -> dict[str, str | None]:
        return {item.item_id: item.title for item in self.dataset.sequences.items}

    # -------------------------------------------------------------------------------------- scoring

    def score(self, histories: Histories) -> np.ndarray:
        """The model's score of every item (columns in `item_ids` order) for each history; unknown ids in a
        history are skipped."""
        rows, _ = self._encode_histories(histories)
        return self._score_rows(rows)

    def _encode_histories(self, histories: Histories) -> tuple[list[np.ndarray], int]:
        if isinstance(histories, str) or any(isinstance(h, str) for h in histories):
            raise UserError("histories must be a list of item-id lists, e.g. [['a', 'b']]")
        rows, unknown = [], 0
        for history in histories:
            known = [self.index[str(i)] for i in history if str(i) in self.index]
            unknown += len(history) - len(known)
            rows.append(np.asarray(known, dtype=np.int64))
        return rows, unknown

    def _score_rows(self, rows: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(rows), len(self.item_ids)), dtype=np.float32)
        encodable = [r for r, row in enumerate(rows) if len(row)]
        if encodable:
            scores = self._scorer.score([rows[r] for r in encodable])[:, 1:].numpy()
            out[encodable] = scores
        return out

    def recommend(
        self,
        users: Sequence[str] | None = None,
        k: int = 10,
        *,
        histories: Histories | None = None,
        exclude_seen: bool = True,
        with_titles: bool = True,
    ) -> pd.DataFrame:
        """Top-k items per user id (their history from the dataset) or per history (a list of item ids).

        `recommend(["u1", "u2"])` takes user ids; `recommend([["i1", "i2"]])` (lists as elements) or
        `recommend(histories=...)` takes histories. Users are scored in batches of `SCORE_BATCH`, so memory
        stays bounded for any number of users.

        Returns a DataFrame with one row per recommendation: `user` (the user id, or the history's position),
        `rank` (1-based), `item_id`, `score` (the model's score; popularity counts for a history with no known
        item), `title` (when the dataset has titles).
        """
        import pandas as pd

        if histories is None and users is not None and not isinstance(users, str) and len(users) > 0 \
                and all(isinstance(u, list | tuple | np.ndarray) for u in users):  # fmt: skip
            users, histories = None, users
        if (users is None) == (histories is None):
            raise UserError("give either users (user ids) or histories (lists of item ids)")
        if k < 1:
            raise UserError(f"k must be >= 1, got {k}")
        if users is not None:
            if isinstance(users, str):
                users = [users]
            known = self.user_histories()
            missing = [str(u) for u in users if str(u) not in known]
            if missing:
                raise UserError(
                    f"{len(missing)} user id(s) not in the dataset, e.g. {missing[0]!r}: recommend from their "
                    "history instead"
                )
            labels: list[Any] = [str(u) for u in users]
            histories = [known[u] for u in labels]
        else:
            labels = list(range(len(histories)))
        rows, unknown = self._encode_histories(histories)
        if unknown:
            warnings.warn(f"{unknown} history item(s) are not in the model and were skipped", UserWarning, stacklevel=2)
        records = []
        for lo in range(0, len(rows), SCORE_BATCH):
            batch = rows[lo : lo + SCORE_BATCH]
            for label, row, row_scores in zip(labels[lo : lo + SCORE_BATCH], batch, self._score_rows(batch), strict=True):
                if not len(row):
                    row_scores = self.popularity.astype(np.float32).copy()
                if exclude_seen and len(row):
                    row_scores[row - 1] = -np.inf
                top = _top_k(row_scores, k)
                records += [(label, rank, self.item_ids[c], float(row_scores[c])) for rank, c in enumerate(top, 1)]
        frame = pd.DataFrame(records, columns=["user", "rank", "item_id", "score"])
        return self._with_titles(frame) if with_titles else frame

    def similar_items(self, item_ids: Sequence[str], k: int = 10, with_titles: bool = True) -> pd.DataFrame:
        """The k items whose trained vectors have the highest cosine with each given item's (itself excluded).

        Returns `query_item_id`, `rank`, `item_id`, `score` (cosine), `title`.
        """
        import pandas as pd

        if isinstance(item_ids, str):
            item_ids = [item_ids]
        missing = [str(i) for i in item_ids if str(i) not in self.index]
        if missing:
            raise UserError(f"{len(missing)} unknown item id(s), e.g. {missing[0]!r}")
        with torch.no_grad():
            vectors = torch.nn.functional.normalize(self.encoder.item_embedding.weight[1:].float(), dim=-1)
            queries = torch.as_tensor([self.index[str(i)] - 1 for i in item_ids])
            cosine = (vectors[queries] @ vectors.T).numpy()
        records = []
        for query, column, row in zip(item_ids, queries.tolist(), cosine, strict=True):
            row[column] = -np.inf
            top = _top_k(row, k)
            records += [(str(query), rank, self.item_ids[c], float(row[c])) for rank, c in enumerate(top, 1)]
        frame = pd.DataFrame(records, columns=["query_item_id", "rank", "item_id", "score"])
        return self._with_titles(frame) if with_titles else frame

    def _with_titles(self, frame: pd.DataFrame) -> pd.DataFrame:
        try:
            titles = self.titles()
        except UserError:
            titles = {}
        frame["title"] = frame["item_id"].map(titles)
        return frame

    def __repr__(self) -> str:
        return f"Recommender({self.encoder.name}, {len(self.item_ids)} items, {self.similarity})"


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k highest finite scores, best first; equal scores in column order."""
    finite = np.flatnonzero(np.isfinite(scores))
    order = finite[np.argsort(-scores[finite], kind="stable")]
    return order[:k]

