"""`semrec eval hybrid --run RUN_DIR`: a trained run fused with non-neural partners (models/fusion.py).

The partners are the item co-occurrence baseline (`cooc`, the dataset's tuned settings), text similarity
(`llmseqsim`, over `--text-table`, its variant chosen on validation; the history's own items get no text vote)
and a popularity prior (`popularity`, log(1 + count); its `--popularity-weights` are usually negative: a
popularity penalty). Every combination of weights (one per partner, the run's weight is 1) is scored on the
VALIDATION split in one pass (experiments/fusion_search.py), with the partners fitted on what precedes it; the
chosen combination is then scored once on the test split (partners refitted on what precedes the test item).

Choice: the best validation NDCG@10 (ties keep the earlier combination, so weight 0, the run alone, wins unless
fusion helps). With `--tail-ratio r` (needs the text partner), only combinations whose validation NDCG@10 in
each popularity group but the most popular reaches r x text similarity's own there are eligible: the
long-tail constraint, decided on validation like the weights. `--tail-confidence z` asks for that share with
a margin of z standard errors of the per-case difference (experiments/fusion_search.py), so that a choice
passing on validation by less than the split's noise is not taken. Every combination's validation scores
are kept.
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

Partner = Literal["cooc", "llmseqsim", "popularity"]


class EvalHybridConfig(JobConfig):
    run: Path = Field(..., description="a finished `semrec train seqrec` run directory (its own dataset)")
    partners: list[Partner] = Field(["cooc"], description="non-neural partners fused with the run's scores")
    text_table: str | None = Field(None, description="ItemTable (.npz or run dir) of the llmseqsim partner")
    weights: list[float] = Field(
        [0.0, 0.125, 0.25, 0.5, 1.0],
        description="weights tried for the cooc and llmseqsim partners (the run's weight is 1), chosen on validation",
    )
    popularity_weights: list[float] = Field(
        [0.0, -0.125, -0.25, -0.5, -1.0],
        description="weights tried for the popularity partner (negative: a popularity penalty)",
    )
    tail_ratio: float | None = Field(
        None, gt=0, description="choose only among combinations whose validation NDCG@10 in every popularity group "
        "but the head reaches this share of text similarity's own (needs --partners llmseqsim)",
    )
    tail_confidence: float = Field(
        0.0, ge=0, description="with --tail-ratio: the share must hold by this many standard errors of the "
        "per-case difference in each group (one-sided lower bound; 1.64: 95% one-sided; 0: the plain floor)",
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
    if name == "popularity":
        from semrec_worker.models.fusion import PopularityPrior

        return PopularityPrior(sequences.item_counts(split))
    return HistoryFloor(_text_similarity(config, sequences))


def _text_similarity(config: EvalHybridConfig, sequences):
    """LLMSeqSim over the text table, its variant chosen on validation."""
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
    return selection.model


def _tail_constraint(config: EvalHybridConfig, sequences, text_partner):
    """The `--tail-ratio` constraint against the validation NDCG@10 of text similarity alone: the text partner as
    it is fused, whose history items get no vote (as LLMSeqSim in the grid, which never recommends the last item
    to itself). The raw model would be a lower bar (on Scientific 0.039 instead of 0.049 in the least popular
    fifth), met on validation by fusions that stay well under LLMSeqSim's tail on test."""
    from semrec_worker.experiments.fusion_search import TailConstraint, score_weightings

    (text,) = score_weightings([text_partner], [[1.0]], sequences, "valid",
                               n_groups=config.popularity_groups, exclude_history=config.exclude_history)  # fmt: skip
    assert config.tail_ratio is not None
    return TailConstraint(text, config.tail_ratio, config.tail_confidence)


def eval_hybrid(config: EvalHybridConfig) -> list[RunResult]:
    from semrec_worker.api import Dataset, Recommender
    from semrec_worker.api.evaluate import MappedScorer, run_method
    from semrec_worker.core.runtime import apply_threads
    from semrec_worker.evaluation.jobs import EvalJobConfig, evaluate_runs
    from semrec_worker.experiments.fusion_search import choose, score_weightings
    from semrec_worker.models.fusion import ScoreFusion
    from semrec_worker.training.config import load_seqrec_config

    if not (config.run / "config.json").exists():
        raise UserError(f"--run {config.run}: not a seqrec run directory (no config.json)")
    if "llmseqsim" in config.partners and config.text_table is None:
        raise UserError("--partners llmseqsim needs --text-table (an ItemTable .npz or a run directory)")
    if config.tail_ratio is not None and "llmseqsim" not in config.partners:
        raise UserError("--tail-ratio compares with text similarity: it needs --partners llmseqsim")
    if config.tail_confidence > 0 and config.tail_ratio is None:
        raise UserError("--tail-confidence is the margin of --tail-ratio: give --tail-ratio too")
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
    grids = [config.popularity_weights if name == "popularity" else config.weights for name in config.partners]
    combinations = [(1.0, *weights) for weights in itertools.product(*grids)]
    scored = score_weightings([model, *partners], combinations, sequences, "valid",
                              n_groups=config.popularity_groups, exclude_history=config.exclude_history)  # fmt: skip
    constraint, text_groups = None, None
    if config.tail_ratio is not None:  # the text partner itself: its variant is not chosen twice
        constraint = _tail_constraint(config, sequences, partners[config.partners.index("llmseqsim")])
        text_groups = constraint.reference.group_ndcg
    tried = []
    for candidate in scored:
        tried.append({"weights": dict(zip(config.partners, candidate.weights[1:], strict=True)),
                      "ndcg@10": candidate.metrics["ndcg@10"], "recall@10": candidate.metrics["recall@10"],
                      "group_ndcg@10": candidate.group_ndcg})  # fmt: skip
        if constraint is not None:
            tried[-1]["tail_lower_bounds"] = constraint.lower_bounds(candidate)
        groups = " ".join(f"{g:.4f}" for g in candidate.group_ndcg)
        echo(f"valid {tried[-1]['weights']}: NDCG@10 {candidate.metrics['ndcg@10']:.4f} "
             f"Recall@10 {candidate.metrics['recall@10']:.4f} by group {groups}")  # fmt: skip
    chosen = choose(scored, constraint)
    if chosen is None:
        assert constraint is not None and text_groups is not None
        shares = [min((g / t for g, t in zip(c.group_ndcg[:-1], text_groups, strict=False) if t > 0), default=0.0)
                  for c in scored]  # fmt: skip
        raise UserError(f"no weight combination reaches --tail-ratio {config.tail_ratio} of text similarity's "
                        f"validation NDCG@10 in every group but the head with --tail-confidence "
                        f"{config.tail_confidence} (text: {', '.join(f'{t:.4f}' for t in text_groups)}); the closest "
                        f"reaches {max(shares):.2f} of it in its weakest group: widen --weights / "
                        f"--popularity-weights or lower --tail-confidence")  # fmt: skip
    best = tried[scored.index(chosen)]
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
                    "tail_ratio": config.tail_ratio,
                    "tail_confidence": config.tail_confidence,
                    "text_valid_group_ndcg@10": text_groups,
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
