"""The item-layer axis of the quality grid (`--item-layers`): which item layer a backbone cell trains through,
and the names its cells and report rows go by (torch-free: the config reads it).

A mode is the seqrec trainer's `--item-layer` (training/item_layer.py) with, for `dual`, its `--fusion`:

    init         the ID embedding starts from the method's table and trains (the grid's cells until now)
    frozen       the table stays fixed behind a trainable adapter:   v_i = W_2 (W_1 z_i + b_1) + b_2
    dual-sum     frozen table -> adapter (s_i) plus a trainable ID row (e_i):   v_i = s_i + e_i
    dual-concat  v_i = W [s_i; e_i] + b
    dual-gate    g_i = sigmoid(W_g [s_i; e_i] + b_g),  v_i = g_i * s_i + (1 - g_i) * e_i

Which methods take the axis: every method with an item table of its own (the registry's `table`). Its `init`
cell is its own stage 2 as before; every other mode trains `semrec train seqrec --init TABLE --item-layer ...`
on that table. For LH, LLM2X, SAID and LLM2BERT4Rec that is the same command in another mode; for LLMEmb the
`init` row stays its native RAT cell (the frozen SCFT table behind its adapter, plus the collaborative
alignment), and its other modes are plain seqrec cells on the SCFT table (no alignment loss). Methods without
a table (Random, the reference methods) keep their one row, and TSLRec keeps only its native cell (its gated
fusion of knowledge and ID embeddings is already a two-view item layer).

Names: an `init` cell keeps the method's name and directory (`<method>/<backbone>/seed<S>`, so earlier grids'
run directories and results files are reused as they are); another mode's cell, its results rows and its
aggregates go by `<method>+<mode>` (`llm2x+dual-sum`), its directory `<method>+<mode>/<backbone>/seed<S>`.
"""

from __future__ import annotations

from typing import Literal, get_args

from semrec_worker.methods import registry

GridItemLayer = Literal["init", "frozen", "dual-sum", "dual-concat", "dual-gate"]
GRID_ITEM_LAYERS: tuple[str, ...] = get_args(GridItemLayer)
INIT = "init"
SEPARATOR = "+"


def layer_settings(mode: str) -> dict[str, str]:
    """The seqrec settings of a mode: `item_layer`, and `fusion` for the dual modes."""
    layer, _, fusion = mode.partition("-")
    return {"item_layer": layer, "fusion": fusion} if fusion else {"item_layer": layer}


def mode_of(item_layer: str | None, fusion: str | None) -> str:
    """The grid's mode of a saved run's settings (runs of earlier versions record no item layer: init)."""
    layer = item_layer or INIT
    return f"{layer}-{fusion or 'sum'}" if layer == "dual" else layer


def takes_modes(method: str) -> bool:
    """Whether the method's cells come in every requested mode (it has a table of its own)."""
    return registry.get(method).table is not None


def modes_of(method: str, requested: list[str]) -> list[str]:
    """The modes of a method's cells, in the order requested; methods without a table: their one (init) cell."""
    return list(requested) if takes_modes(method) else [INIT]


def cell_name(method: str, mode: str = INIT) -> str:
    """The name a cell's directory, results rows and aggregates go by."""
    return method if mode == INIT else f"{method}{SEPARATOR}{mode}"


def split(name: str) -> tuple[str, str]:
    """(method, mode) of a cell name; a name without a known mode suffix is the method's init cell."""
    method, sep, mode = name.partition(SEPARATOR)
    return (method, mode) if sep and mode in GRID_ITEM_LAYERS else (name, INIT)


def mode_label(mode: str) -> str:
    """"frozen", "dual, sum", ... ("" for init)."""
    return "" if mode == INIT else ", ".join(mode.split("-"))


def label(name: str) -> str:
    """The report's row label of a cell name: "LLM2X", "LLM2X (frozen)", "LLM2X (dual, sum)"."""
    method, mode = split(name)
    return registry.label(method) + (f" ({mode_label(mode)})" if mode != INIT else "")


def row_names(methods: list[str], requested: list[str]) -> list[str]:
    """The report's rows: methods in registry order, each in its modes (requested order)."""
    return [cell_name(m, mode) for m in registry.names() if m in methods for mode in modes_of(m, requested)]


def sort_key(name: str) -> tuple[int, int]:
    """Registry order of the method, then the mode's place in GRID_ITEM_LAYERS (unknown names last)."""
    method, mode = split(name)
    order = registry.names()
    return (order.index(method) if method in order else len(order), GRID_ITEM_LAYERS.index(mode))
