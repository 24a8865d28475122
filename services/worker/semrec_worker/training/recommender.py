"""`SeqRecRecommender`: a trained encoder as a `semrec_worker.evaluation.Recommender` (batched scoring)."""

from __future__ import annotations

import numpy as np
import torch

from semrec_worker.backbones.base import SequenceEncoder, input_width, left_pad
from semrec_worker.losses.base import HistoryShift, Similarity, scores


class SeqRecRecommender:
    """Scores every item for each history: dot product or cosine, as the training loss implies."""

    def __init__(self, encoder: SequenceEncoder, similarity: Similarity, device: torch.device | None = None) -> None:
        self.encoder = encoder
        self.similarity = similarity
        self.device = device or next(encoder.parameters()).device

    def encode(self, histories: list[np.ndarray], chunk: int = 128) -> torch.Tensor:
        """h_s for each history; histories are encoded in chunks of similar length (less padding)."""
        lengths = np.array([len(h) for h in histories])
        order = np.argsort(lengths, kind="stable")
        out: torch.Tensor | None = None
        for lo in range(0, len(order), chunk):
            rows = order[lo : lo + chunk]
            width = input_width(int(lengths[rows].max(initial=1)), self.encoder.max_len)
            hidden = self.encoder(left_pad([histories[r] for r in rows], width).to(self.device))
            if out is None:
                out = hidden.new_empty(len(histories), hidden.shape[1])
            out[torch.as_tensor(rows, device=self.device)] = hidden
        assert out is not None, "no histories to encode"
        return out

    def history_shift(self, histories: list[np.ndarray]) -> HistoryShift | None:
        """The learned history bias on the items each history's h_s was encoded from (None: the model has
        none): the last max_len items (BERT4Rec: max_len - 1, beside its [mask]); the most recent is the last."""
        bias, last_bias = self.encoder.history_bias, self.encoder.last_item_bias
        if bias is None:
            return None
        visible = self.encoder.visible_items(left_pad(histories, self.encoder.max_len).to(self.device))
        return HistoryShift.of(visible, self.encoder.n_items + 1, bias, visible[:, -1], last_bias)

    @torch.inference_mode()
    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        """[B, n_items + 1] scores: the loss's similarity, plus the history bias b on history items."""
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            hidden = self.encode(histories)
            out = scores(hidden, self.encoder.item_embedding.weight, self.similarity)
            shift = self.history_shift(histories)
            if shift is not None:
                out = shift.add_to(out)
            return out.float().cpu()
        finally:
            self.encoder.train(was_training)
