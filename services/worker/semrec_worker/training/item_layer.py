"""`ItemLayerSettings`: how a seqrec run's item layer uses its `ItemTable` (torch-free: the CLI reads it).

Three modes (`--item-layer`), for every table and every backbone:

- `init` (default): the ID embedding starts from the table (PCA-reduced to `--dim` when wider) and trains;
  with `--init random` it is the plain random ID embedding.
- `frozen`: the table stays fixed and a trainable adapter maps it to the model width (LLMEmb's RAT form:
  e_i = W_2 (W_1 z_i + b_1) + b_2, or one linear map with `--adapter-hidden 0`).
- `dual`: both views at once, LLM-ESR's idea (Liu et al., NeurIPS'24) at the item layer: the frozen table
  through the adapter (semantic view s_i) and a trainable ID embedding e_i (initialised from the table's PCA
  reduction, `--id-init table`, or randomly), fused (`--fusion`) into the item vector the backbone reads
  and the loss scores:
      sum:    v_i = s_i + e_i
      concat: v_i = W [s_i; e_i] + b          (W starts as [I/2, I/2], b = 0: the mean of the two views)
      gate:   g_i = sigmoid(W_g [s_i; e_i] + b_g),  v_i = g_i * s_i + (1 - g_i) * e_i   (starts at g = 1/2)

The served item vectors are always the fused v_i (the run's item_table.npz). A new item gets its semantic
view from its text (the run's `item-layer` refresh encoder) and its ID part from the ID rows of its
`--refresh-neighbours` nearest catalogue items by table cosine (zero with 0): see refresh/encoders.py.

The legacy flags map onto the modes: `--projection linear` is `frozen` with `--adapter-hidden 0` (kept as is);
`--freeze-items` freezes the `init` layer and is refused with the other modes (their table is frozen anyway).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from semrec.config import StrictModel

ItemLayerMode = Literal["init", "frozen", "dual"]
Fusion = Literal["sum", "concat", "gate"]
ITEM_LAYER_MODES: tuple[str, ...] = ("init", "frozen", "dual")
FUSIONS: tuple[str, ...] = ("sum", "concat", "gate")


class ItemLayerSettings(StrictModel):
    item_layer: ItemLayerMode = Field(
        "init", description="init: the ID embedding starts from the table and trains; frozen: the table stays "
        "fixed behind a trainable adapter; dual: frozen table -> adapter plus a trainable ID embedding, fused"
    )
    fusion: Fusion = Field("sum", description="dual: how the semantic and ID views combine (sum, concat = "
                           "concatenation + linear projection, gate = learned per-dimension gate)")
    adapter_hidden: int = Field(128, ge=0, description="frozen/dual: hidden width of the two-layer adapter over "
                                "the table (0: one linear map)")
    adapter_start: Literal["centred", "whitened"] = Field(
        "centred", description="frozen/dual: the adapter's first layer starts as a random map of the centred table "
        "(centred) or as its PCA whitening (whitened: every principal direction at unit variance)"
    )
    init_start: Literal["pca", "whitened"] = Field(
        "pca", description="init (and dual with --id-init table): the ID rows start as the table's PCA reduction "
        "(pca) or its PCA whitening (whitened: every principal direction at unit variance, for tables whose "
        "variance sits in a few directions)"
    )
    id_init: Literal["table", "random"] = Field(
        "table", description="dual: the ID embedding starts from the table's PCA reduction, or random"
    )
    refresh_text_encoder: Literal["minilm", "hashing", "none"] = Field(
        "minilm", description="frozen/dual: text encoder whose ridge map to the table gives new items their "
        "table row (the run's item-layer refresh encoder; none: no refresh encoder)"
    )
    refresh_neighbours: int = Field(10, ge=0, description="dual: a new item's ID part = the cosine-weighted mean "
                                    "of its nearest catalogue items' ID rows by table cosine (0: zero)")
