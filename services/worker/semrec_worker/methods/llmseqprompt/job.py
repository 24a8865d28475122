"""`semrec train llmseqprompt` and the quality grid's LLMSeqPrompt cell: fine-tune, then evaluate the generated
rankings under the shared protocol (full and sampled), with the training and inference cost per user.

Run directory: `config.json`, `adapter/` (peft LoRA), `history.json` (loss per step, costs), `generations.json`
(the names written for the first sessions and the items they map to), `results.json` and `test_ranks.npz`
(what `semrec bench quality` collects).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from semrec.cli_builder import echo
from semrec.results import write_results

from semrec_worker.core.runtime import default_device
from semrec_worker.data.dataset import SequenceDataset, load_dataset
from semrec_worker.evaluation.jobs import TEST_RANKS, evaluate_runs
from semrec_worker.lm import load_language_model
from semrec_worker.lm.backends import text_encoder
from semrec_worker.methods.base import settings_of
from semrec_worker.methods.llmseqprompt.model import (
    FineTuneReport,
    LLMSeqPromptRecommender,
    PromptCodec,
    catalogue_names,
    fine_tune,
    training_pairs,
    with_lora,
)
from semrec_worker.methods.llmseqprompt.settings import (
    ADAPTER,
    HISTORY,
    LLMSeqPromptSettings,
    TrainLLMSeqPromptConfig,
)

NAME = "llmseqprompt"
SHOWN_SESSIONS = 20


def build(settings: LLMSeqPromptSettings, dataset: SequenceDataset, progress: bool = True):
    """The fine-tuned recommender, its fine-tuning report and the number of training pairs."""
    lm = load_language_model(settings.llm)
    tokenizer = lm.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = with_lora(lm.model, settings).to(default_device())
    codec = PromptCodec(tokenizer, catalogue_names(dataset, settings), settings)
    pairs = training_pairs(dataset, settings.history_items)
    echo(f"LLMSeqPrompt: {len(pairs)} prompt-completion pairs from {dataset.n_users} training sequences, "
         f"{settings.max_steps} steps of {settings.batch_size}")
    report = fine_tune(model, codec, pairs, settings, progress)
    recommender = LLMSeqPromptRecommender(model, codec, text_encoder(settings.text_encoder), settings)
    return recommender, report, len(pairs)


def user_subset(dataset: SequenceDataset, n_users: int | None, seed: int) -> SequenceDataset:
    """`n_users` users drawn with `seed` (all when None or more than there are), same catalogue."""
    if n_users is None or n_users >= dataset.n_users:
        return dataset
    chosen = np.sort(np.random.default_rng(seed).choice(dataset.n_users, n_users, replace=False))
    return SequenceDataset(dataset.name, dataset.item_ids, dataset.items, [dataset.user_ids[u] for u in chosen],
                           [dataset.sequences[u] for u in chosen], dict(dataset.stats))


def costs(report: FineTuneReport, n_train_users: int, n_pairs: int, recommender: LLMSeqPromptRecommender,
          n_eval_users: int) -> dict[str, Any]:
    return {
        "fine_tune_steps": report.steps, "fine_tune_pairs_seen": report.pairs_seen, "training_pairs": n_pairs,
        "fine_tune_s": report.wall_s, "fine_tune_s_per_pair": round(report.wall_s / max(report.pairs_seen, 1), 4),
        "fine_tune_s_per_training_user": round(report.wall_s / max(n_train_users, 1), 4),
        "fine_tune_epochs": round(report.pairs_seen / max(n_pairs, 1), 4), "cut_short": report.cut_short,
        "eval_users": n_eval_users, "inference_s": round(recommender.generation_s, 2),
        "inference_s_per_user": round(recommender.generation_s / max(n_eval_users, 1), 4),
        "device": default_device(), "threads": torch.get_num_threads(),
    }


def train_llmseqprompt(config: TrainLLMSeqPromptConfig) -> Path:
    if config.threads:
        torch.set_num_threads(config.threads)
    dataset = load_dataset(config)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = config.out or Path("runs") / f"{NAME}-{dataset.name}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    config.save(out)
    settings = settings_of(config, LLMSeqPromptSettings)
    recommender, report, n_pairs = build(settings, dataset)
    recommender.model.save_pretrained(out / ADAPTER)
    evaluated = user_subset(dataset, config.eval_users, config.seed)
    runs = evaluate_runs(recommender, evaluated, config, NAME, train_s=report.wall_s,
                         extra_config={"decoding": settings.decoding, "num_generations": settings.num_generations,
                                       "backfill": settings.backfill}, ranks_path=out / TEST_RANKS)
    cost = costs(report, dataset.n_users, n_pairs, recommender, evaluated.n_users)
    for run in runs:
        run.config.update(cost)
    write_results(out / "results.json", runs)
    (out / HISTORY).write_text(json.dumps({"losses": report.losses, **cost}, indent=1))
    histories, targets = evaluated.split("test")
    shown = []
    for history, target in list(zip(histories, targets, strict=True))[:SHOWN_SESSIONS]:
        key = tuple(int(i) for i in history)
        shown.append({"history": [recommender.codec.names[i - 1] for i in key[-5:]],
                      "target": recommender.codec.names[int(target) - 1],
                      "generated": recommender.generated.get(key, [])})
    (out / "generations.json").write_text(json.dumps(shown, indent=1))
    echo(f"LLMSeqPrompt: fine-tuning {cost['fine_tune_s']} s ({cost['fine_tune_s_per_pair']} s/pair), inference "
         f"{cost['inference_s_per_user']} s/user over {evaluated.n_users} users -> {out}")
    return out


def grid_reference(dataset: SequenceDataset, grid: Any) -> tuple[LLMSeqPromptRecommender, str, dict[str, Any]]:
    """The quality grid's LLMSeqPrompt cell: fine-tuned here with the grid's LM and stage-1 budget, every test
    user generated for (the cost grows with users: on CPU, train it with `semrec train llmseqprompt
    --eval-users N` instead)."""
    settings = LLMSeqPromptSettings(llm=grid.llm, text_encoder=grid.text_encoder,
                                    max_train_minutes=grid.stage1_max_train_minutes)
    recommender, report, n_pairs = build(settings, dataset)
    extra = {"llm": grid.llm, "fine_tune_steps": report.steps, "fine_tune_s": report.wall_s, "training_pairs": n_pairs,
             "decoding": settings.decoding, "num_generations": settings.num_generations}
    return recommender, NAME, extra
