"""LLMSeqPrompt on the tiny LM: prompt-completion pairs from training sequences only, the loss on the completion
alone, LoRA training that lowers it, generated names mapped to items and ranked by their duplicates, and
`semrec train llmseqprompt` writing a run the grid can read (full and sampled protocols, costs per user)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from semrec.results import read_results
from semrec_worker.lm import load_language_model
from semrec_worker.methods.llmseqprompt.model import (
    IGNORE,
    PromptCodec,
    catalogue_names,
    fine_tune,
    rank_scores,
    training_pairs,
    with_lora,
)
from semrec_worker.methods.llmseqprompt.settings import LLMSeqPromptSettings
from typer.testing import CliRunner

SMALL = "synthetic:users=60,items=30,avg_len=6,seed=3"
WIDER = "synthetic:users=300,items=200,avg_len=10,seed=1"  # enough items for 100 sampled negatives
TINY = {"llm": "tiny", "text_encoder": "tiny", "history_items": 2, "name_max_chars": 16, "max_new_tokens": 12,
        "num_generations": 3, "batch_size": 4, "lr": 3e-3, "precision": "fp32"}


def test_training_pairs_never_read_validation_or_test_targets(small):
    pairs = training_pairs(small, history_items=2)
    expected = sum(max(len(s) - 3, 0) for s in small.sequences)  # positions 1..len-3 of each training prefix
    assert len(pairs) == expected
    first = small.sequences[0]
    assert [int(t) for _, t in pairs[: len(first) - 3]] == [int(i) for i in first[1:-2]]
    assert all(len(h) <= 2 for h, _ in pairs)
    np.testing.assert_array_equal(pairs[1][0], first[0:2])  # the last two items before position 2


def test_the_loss_is_on_the_completion_only(small):
    lm = load_language_model("tiny")
    settings = LLMSeqPromptSettings(**TINY)
    codec = PromptCodec(lm.tokenizer, catalogue_names(small, settings), settings)
    history, target = training_pairs(small, 2)[0]
    batch = codec.training_batch([(history, target), (small.sequences[1][:2], int(small.sequences[1][2]))])
    prompt = codec.prompt_ids(history)
    labels = batch["labels"][0]
    assert (labels[: len(prompt)] == IGNORE).all()
    completion = labels[labels != IGNORE].tolist()
    assert completion == codec.completion_ids(target) and completion[-1] == lm.tokenizer.eos_token_id
    name_ids = lm.tokenizer(" " + codec.names[target - 1], add_special_tokens=False)["input_ids"]
    assert completion[:-1] == name_ids[: settings.max_new_tokens]  # the next item's name, then EOS
    assert batch["attention_mask"].sum(1).tolist() == [int((batch["labels"][r] != IGNORE).sum()) + len(
        codec.prompt_ids(h)) for r, h in enumerate([history, small.sequences[1][:2]])]  # fmt: skip
    generation = codec.generation_batch([history, small.sequences[1][:3]])
    assert (generation["attention_mask"][:, -1] == 1).all()  # left padding: every prompt ends at the last column


def test_rank_scores_count_duplicates_then_first_position():
    scores = rank_scores([5, 2, 5, 7, 2, 5], n_items=8)
    order = [int(i) for i in np.argsort(-scores[1:], kind="stable") + 1][:3]
    assert order == [5, 2, 7]  # 5 three times, 2 twice (first at position 1), 7 once
    assert np.isneginf(scores[0]) and len(set(scores[[1, 3, 4, 6, 8]].tolist())) == 1  # the rest tied, below
    filled = rank_scores([3], n_items=4, backfill=np.array([0.9, -0.5, 1.0, 0.1]))
    assert [int(i) for i in np.argsort(-filled[1:]) + 1] == [3, 1, 4, 2]


def test_lora_fine_tuning_lowers_the_completion_loss(small):
    lm = load_language_model("tiny")
    settings = LLMSeqPromptSettings(**{**TINY, "max_steps": 40, "lr": 1e-2, "lora_dropout": 0.0})
    model = with_lora(lm.model, settings)
    codec = PromptCodec(lm.tokenizer, catalogue_names(small, settings), settings)
    pairs = training_pairs(small, 2)[:4]  # one batch, seen 40 times: memorised
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    report = fine_tune(model, codec, pairs, settings, progress=False)
    assert report.steps == 40 and report.pairs_seen == 160
    # a random 2-layer LM with frozen weights learns little beyond the token frequencies, but it must learn that
    assert np.mean(report.losses[-5:]) < 0.97 * np.mean(report.losses[:5])
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: the adapters did move
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)  # base weights frozen


def test_train_command_writes_an_evaluated_run(tmp_path):
    from semrec.cli import build_app

    out = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "precision"]
    args = ["train", "llmseqprompt", "--data", WIDER, *flags, "--precision", "fp32", "--max-steps", "3", "--eval-users", "10",
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    runs = read_results(out / "results.json").runs
    assert [(r.method, r.protocol) for r in runs] == [("llmseqprompt", "full"), ("llmseqprompt", "sampled100")]
    for run in runs:
        assert run.config["eval_users"] == 10 and run.config["fine_tune_steps"] == 3
        assert run.config["inference_s_per_user"] > 0 and run.config["fine_tune_s_per_pair"] > 0
        assert 0 <= run.metrics["ndcg@10"] <= 1
    ranks = np.load(out / "test_ranks.npz")
    assert len(ranks["full"]) == 10 and (ranks["sampled100"] <= 100).all()
    shown = json.loads((out / "generations.json").read_text())
    assert len(shown) == 10 and all(len(s["generated"]) == 3 for s in shown)
    assert (out / "adapter" / "adapter_config.json").exists()
    assert len(json.loads((out / "history.json").read_text())["losses"]) == 3


@pytest.mark.parametrize("decoding", ["beam", "sampling"])
def test_generated_names_map_to_catalogue_items(small, decoding):
    from semrec_worker.lm.backends import text_encoder
    from semrec_worker.methods.llmseqprompt.model import LLMSeqPromptRecommender

    lm = load_language_model("tiny")
    settings = LLMSeqPromptSettings(**{**TINY, "decoding": decoding})
    codec = PromptCodec(lm.tokenizer, catalogue_names(small, settings), settings)
    recommender = LLMSeqPromptRecommender(with_lora(lm.model, settings).eval(), codec, text_encoder("tiny"), settings)
    # an exact catalogue name maps to its own item
    mapped, _ = recommender.map_names([codec.names[4], codec.names[9]])
    assert mapped == [5, 10]
    histories = [small.sequences[0][:3], small.sequences[1][:2], small.sequences[0][:3]]
    scores = recommender.score(histories)
    assert scores.shape == (3, small.n_items + 1) and torch.isneginf(scores[:, 0]).all()
    assert torch.equal(scores[0], scores[2]) and len(recommender.cache) == 2  # one generation per distinct history
    assert all(len(names) == 3 for names in recommender.generated.values())
    top = scores[0, 1:] > -3  # the generated items, ranked above the rest
    assert 1 <= int(top.sum()) <= 3
