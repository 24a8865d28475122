"""Training of sequential recommenders: per-prefix windows, early stopping, checkpoints, DDP via torchrun."""

from semrec_worker.training.config import SeqRecConfig
from semrec_worker.training.recommender import SeqRecRecommender
from semrec_worker.training.trainer import TrainResult, train_seqrec

__all__ = ["SeqRecConfig", "SeqRecRecommender", "TrainResult", "train_seqrec"]
