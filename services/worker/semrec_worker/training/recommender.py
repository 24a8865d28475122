"""`SeqRecRecommender`: a trained encoder as a `semrec_worker.evaluation.Recommender` (batched scoring)."""

from __future__ import annotations

import numpy as np
import torch

from semrec_worker.backbones.base import SequenceEncoder, input_width, left_pad
from semrec_worker.losses.base import Similarity, scores


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

    @torch.inference_mode()
    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            hidden = self.encode(histories)
            return scores(hidden, self.encoder.item_embedding.weight, self.similarity).float().cpu()
        finally:
            self.encoder.train(was_training)
