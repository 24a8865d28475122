"""LLM2BERT4Rec: BERT4Rec whose item embeddings start from the LLM2X table (text embeddings, PCA to BERT4Rec's
width), then train as usual.

Harte et al., "Leveraging Large Language Models for Sequential Recommendation" (RecSys'23), section 3.3 (the
paper numbers no equations): the catalogue's LLM embeddings E in R^{n x 1536} (ada-002; here the packaged
all-MiniLM-L6-v2, 384-d, since nothing is downloaded) are reduced by PCA to BERT4Rec's embedding size d, and
E_PCA initialises BERT4Rec's item embedding table; every other weight starts at random and all train with
BERT4Rec's cloze objective. The paper reports +15-20% NDCG over randomly initialised BERT4Rec.

The table is LLM2X's (`methods/llm2x.py`), labelled `llm2bert4rec` so its cells are reported under that name,
beside the grid's random-init BERT4Rec cells: `semrec bench quality --methods random,llm2bert4rec --backbones
bert4rec`. Its width is the backbone's `--dim` (the grid passes its own), so PCA happens once, here.
"""

from __future__ import annotations

from pathlib import Path

from semrec.errors import UserError
from semrec.item_table import ItemTable

from semrec_worker.data.dataset import load_dataset
from semrec_worker.methods.base import run_dir, save_table, settings_of
from semrec_worker.methods.llm2x import LLM2X, TrainLLM2XConfig
from semrec_worker.methods.llm_settings import LLM2XSettings

NAME = "llm2bert4rec"
BACKBONE = "bert4rec"


class TrainLLM2BERT4RecConfig(TrainLLM2XConfig):
    """`semrec train llm2bert4rec`: the LLM2X table for a BERT4Rec of width `--dim`, written to a run directory."""


def only_bert4rec(backbone: str | None) -> dict[str, str]:
    """The grid cell's check: LLM2BERT4Rec is a BERT4Rec method (its other-backbone cells would be LLM2X's)."""
    if backbone != BACKBONE:
        raise UserError(f"llm2bert4rec trains only a {BACKBONE} backbone, not {backbone}: run it with "
                        f"--backbones {BACKBONE} (LLM2X is the same table on the other backbones)")
    return {}


def train_llm2bert4rec(config: TrainLLM2BERT4RecConfig) -> Path:
    dataset = load_dataset(config)
    table = LLM2X(settings_of(config, LLM2XSettings)).fit(dataset)
    labelled = ItemTable(table.ids, table.vectors, {**table.metadata, "method": NAME, "backbone": BACKBONE,
                                                    "pca_to": config.dim})
    return save_table(labelled, config, run_dir(config, NAME, dataset))
