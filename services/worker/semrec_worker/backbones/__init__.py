"""Sequential recommender backbones: item-index histories -> one vector per history.

Registry (name -> class), used by `semrec train seqrec --backbone NAME`:
`gru4rec` (Hidasi et al. 2016), `sasrec` (Kang & McAuley 2018), `bert4rec` (Sun et al. 2019).
"""

from __future__ import annotations

from torch import nn

from semrec_worker.backbones.base import SequenceEncoder, left_pad
from semrec_worker.backbones.bert4rec import BERT4Rec
from semrec_worker.backbones.gru4rec import GRU4Rec
from semrec_worker.backbones.item_embedding import TableProjection, build_item_embedding
from semrec_worker.backbones.sasrec import SASRec
from semrec_worker.core.names import BACKBONE_NAMES, HISTORY_BIAS_NAMES, BackboneName

BACKBONES: dict[str, type[SequenceEncoder]] = {"gru4rec": GRU4Rec, "sasrec": SASRec, "bert4rec": BERT4Rec}
assert tuple(BACKBONES) == BACKBONE_NAMES, "core.names.BackboneName lists every backbone"


def build_backbone(name: str, item_embedding: nn.Module, **settings: object) -> SequenceEncoder:
    """`settings`: max_len, num_layers, num_heads, dropout, mask_prob (each backbone takes what it uses), and
    history_bias ("none", "learned", "learned_last": the model gets its trained history bias, backbones/base.py)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} (choose from {', '.join(BACKBONES)})")
    history_bias = settings.pop("history_bias", "none")
    if history_bias not in HISTORY_BIAS_NAMES:
        raise ValueError(f"unknown history_bias {history_bias!r} (choose from {', '.join(HISTORY_BIAS_NAMES)})")
    model = BACKBONES[name](item_embedding, **settings)
    if history_bias != "none":
        model.enable_history_bias(last_item=history_bias == "learned_last")
    return model


__all__ = [
    "BACKBONES",
    "BERT4Rec",
    "BackboneName",
    "GRU4Rec",
    "SASRec",
    "SequenceEncoder",
    "TableProjection",
    "build_backbone",
    "build_item_embedding",
    "left_pad",
]
