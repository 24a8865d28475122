"""Per-backbone recipe defaults: the epoch cap and early-stopping patience a `semrec train seqrec` run gets when
`--epochs` / `--patience` are not given (torch-free: the CLI reads it).

SASRec and GRU4Rec keep the SAID paper's schedule (patience 5, at most 100 epochs). BERT4Rec sits on a
popularity plateau (validation NDCG@10 near the popularity model's) for 10-25 epochs before its cloze
objective starts to use the context, so patience 5 or 10 stops it on the plateau: it gets patience 20
(docs/seqrec.md, "Calibration", item 7; Petrov & Macdonald, RecSys'22, find the same need for long training).

The trainer resolves the defaults when the config is built, so a run's config.json records the values it ran
with and a saved run rebuilds identically whatever this table says later.
"""

from __future__ import annotations

from dataclasses import dataclass

from semrec_worker.core.names import BACKBONE_NAMES


@dataclass(frozen=True)
class Recipe:
    epochs: int  # maximum epochs
    patience: int  # epochs without a better validation metric before stopping


BACKBONE_RECIPES: dict[str, Recipe] = {
    "gru4rec": Recipe(epochs=100, patience=5),
    "sasrec": Recipe(epochs=100, patience=5),
    "bert4rec": Recipe(epochs=100, patience=20),
}
assert set(BACKBONE_RECIPES) == set(BACKBONE_NAMES), "every backbone needs its recipe defaults"


def recipe_of(backbone: str) -> Recipe:
    return BACKBONE_RECIPES[backbone]


def describe(setting: str) -> str:
    """One column of the table in words ("gru4rec 5, sasrec 5, bert4rec 20"), for `--help`."""
    return ", ".join(f"{name} {getattr(r, setting)}" for name, r in BACKBONE_RECIPES.items())
