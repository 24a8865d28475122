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

    def encode(self, histories: list[np.ndarray]) -> torch.Tensor:
        width = input_width(max((len(h) for h in histories), default=1), self.encoder.max_len)
        return self.encoder(left_pad(histories, width).to(self.device))

    @torch.inference_mode()
    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            hidden = self.encode(histories)
            return scores(hidden, self.encoder.item_embedding.weight, self.similarity).float().cpu()
        finally:
            self.encoder.train(was_training)
