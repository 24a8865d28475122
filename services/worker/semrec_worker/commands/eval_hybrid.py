"""`semrec eval hybrid --run RUN_DIR`: a trained run fused with non-neural partners (models/fusion.py).

The partners are the item co-occurrence baseline (`cooc`, the dataset's tuned settings) and text similarity
(`llmseqsim`, over `--text-table`, its variant chosen on validation; the history's own items get no text vote).
Every combination of `--weights` (one weight per partner, the run's weight is 1) is scored on the VALIDATION
split, with the partners fitted on what precedes it; the best validation NDCG@10 is then scored once on the test
split (partners refitted on what precedes the test item). Ties keep the earlier combination, so weight 0 (the
run alone) wins unless fusion helps. Every combination's validation score is kept in the results.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig
from semrec.errors import UserError
from semrec.results import RunResult, write_results

from semrec_worker.commands.eval_knn import add_group_breakdown
from semrec_worker.evaluation.jobs import Protocol

Partner = Literal["cooc", "llmseqsim"]


class EvalHybridConfig(JobConfig):
    run: Path = Field(..., description="a finished `semrec train seqrec` run directory (its own dataset)")
    partners: list[Partner] = Field(["cooc"], description="non-neural partners fused with the run's scores")
    text_table: str | None = Field(None, description="ItemTable (.npz or run dir) of the llmseqsim partner")
    weights: list[float] = Field(
        [0.0, 0.125, 0.25, 0.5, 1.0],
        description="weights tried for each partner (the run's weight is 1), chosen on validation NDCG@10",
    )
    protocols: list[Protocol] = Field(["full", "sampled100"], description="protocols of the test scoring")
    exclude_history: bool = Field(False, description="mask items from the user's history (full protocol)")
    eval_seed: int = Field(0, description="seed of the sampled negatives")
    evaluate_test: bool = Field(
        True, description="score the chosen fusion on the test split (off: validation only, for tuning)"
    )
    popularity_groups: int = Field(5, ge=2, description="item-popularity groups of the per-group breakdown")
    append: bool = Field(False, description="add the runs to the results file instead of replacing it")
    results: Path | None = Field(
        None, description="results JSON (default RUN_DIR/eval-hybrid-<dataset>.json)"
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads of the scoring (default: torch's choice)"
    )


def _partner(name: str, config: EvalHybridConfig, sequences, split: str):
    from semrec_worker.models.fusion import HistoryFloor
    from semrec_worker.models.knn import CooccurrenceRecommender
    from semrec_worker.models.knn_settings import settings_for

    if name == "cooc":
        return CooccurrenceRecommender.fit(sequences, split, **settings_for("cooc", sequences.name))
    from semrec.item_table import ItemTable

    from semrec_worker.methods.llm_settings import SESSION_COMBINATIONS, SIMILARITIES
    from semrec_worker.methods.llmseqsim import select_on_valid

    selection = select_on_valid(
        ItemTable.load(config.text_table),
        sequences,
        list(SESSION_COMBINATIONS),
        list(SIMILARITIES),
        exclude_history=config.exclude_history,
    )
    return HistoryFloor(selection.model)


def eval_hybrid(config: EvalHybridConfig) -> list[RunResult]:
    from semrec_worker.api import Dataset, Recommender
    from semrec_worker.api.evaluate import MappedScorer, run_method
    from semrec_worker.core.runtime import apply_threads
    from semrec_worker.evaluation.jobs import EvalJobConfig, evaluate_runs
    from semrec_worker.evaluation.protocol import EvalSettings, evaluate
    from semrec_worker.models.fusion import ScoreFusion
    from semrec_worker.training.config import load_seqrec_config

    if not (config.run / "config.json").exists():
        raise UserError(f"--run {config.run}: not a seqrec run directory (no config.json)")
    if "llmseqsim" in config.partners and config.text_table is None:
        raise UserError("--partners llmseqsim needs --text-table (an ItemTable .npz or a run directory)")
    if len(set(config.partners)) != len(config.partners):
        raise UserError(f"--partners lists a partner twice: {config.partners}")
    apply_threads(config.threads)
    trained = load_seqrec_config(config.run)
    dataset = Dataset.from_path(
        trained.data,
        format=trained.format,
        kcore=trained.kcore,
        history_cap=trained.history_cap,
        drop_unknown_items=trained.drop_unknown_items,
    )
    sequences = dataset.sequences
    model = MappedScorer(Recommender.from_run(config.run, dataset=dataset), dataset)
    start = time.perf_counter()

    partners = [_partner(name, config, sequences, "valid") for name in config.partners]
    settings = EvalSettings(
        protocol="full", exclude_history=config.exclude_history, eval_seed=config.eval_seed
    )
    tried = []
    for weights in itertools.product(config.weights, repeat=len(partners)):
        fused = ScoreFusion([(model, 1.0), *zip(partners, weights, strict=True)])
        metrics = evaluate(fused, sequences, "valid", settings).metrics
        tried.append(
            {
                "weights": dict(zip(config.partners, weights, strict=True)),
                "ndcg@10": metrics["ndcg@10"],
                "recall@10": metrics["recall@10"],
            }
        )
        echo(
            f"valid {tried[-1]['weights']}: NDCG@10 {metrics['ndcg@10']:.4f} Recall@10 {metrics['recall@10']:.4f}"
        )
    best = max(tried, key=lambda row: row["ndcg@10"])  # max keeps the first of equals
    echo(f"chosen on validation: {best['weights']}")
    if not config.evaluate_test:
        return []

    partners = [_partner(name, config, sequences, "test") for name in config.partners]
    fused = ScoreFusion([(model, 1.0), *zip(partners, best["weights"].values(), strict=True)])
    eval_config = EvalJobConfig(
        data=trained.data,
        protocols=config.protocols,
        exclude_history=config.exclude_history,
        eval_seed=config.eval_seed,
    )
    method = f"{run_method(config.run)}+{'+'.join(config.partners)}"
    with tempfile.TemporaryDirectory() as tmp:
        ranks_path = Path(tmp) / "ranks.npz"
        runs = evaluate_runs(
            fused,
            sequences,
            eval_config,
            method,
            backbone=trained.backbone,
            loss=trained.loss,
            seed=trained.seed,
            train_s=time.perf_counter() - start,
            ranks_path=ranks_path,
            extra_config={
                "run": str(config.run),
                "hybrid": {
                    "partners": config.partners,
                    "weights": best["weights"],
                    "valid": tried,
                    "text_table": str(config.text_table) if config.text_table else None,
                },
            },
        )
        add_group_breakdown(runs, sequences, ranks_path, config.popularity_groups)
    out = config.results or config.run / f"eval-hybrid-{dataset.name}.json"
    write_results(out, runs, append=config.append)
    echo(f"results written to {out}")
    return runs


def register(groups: CommandGroups) -> None:
    config_command(
        groups.eval,
        "hybrid",
        EvalHybridConfig,
        eval_hybrid,
        "A trained run fused with co-occurrence and/or text similarity (z-scored late fusion): partner weights "
        "chosen on validation NDCG@10, the chosen fusion scored once on test. Writes a results JSON.",
    )
