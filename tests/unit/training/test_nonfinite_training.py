"""Training stops loudly on a NaN/inf loss or NaN/inf validation scores; evaluation ranks NaN models last."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.training import SeqRecConfig, train_seqrec
from semrec_worker.training.finite import NonFiniteError, ensure_finite_loss, ensure_finite_scores
from torch import nn

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
SMALL = dict(data=DATA, dim=16, max_len=10, batch_size=64, lr=5e-3, threads=1, dropout=0.0)


class ConstantRecommender:
    """Scores every item with one value (NaN, say): the worst possible model."""

    def __init__(self, n_items: int, value: float, dtype: torch.dtype = torch.float32) -> None:
        self.n_items, self.value, self.dtype = n_items, value, dtype

    def score(self, histories):
        out = torch.full((len(histories), self.n_items + 1), self.value, dtype=self.dtype)
        out[:, 0] = -math.inf
        return out


def test_a_nan_model_scores_zero_under_both_protocols(tiny_synthetic):
    model = ConstantRecommender(tiny_synthetic.n_items, math.nan)
    for protocol, worst in (("full", tiny_synthetic.n_items - 1), ("sampled100", 100)):
        result = evaluate(model, tiny_synthetic, "test", EvalSettings(protocol=protocol))
        assert (result.ranks == worst).all(), protocol
        assert result.metrics["ndcg@10"] == 0.0 and result.metrics["recall@20"] == 0.0
        assert result.metrics["mrr"] == pytest.approx(1 / (worst + 1))


class NearTies:
    """float64 scores where the target beats every other item by 1e-12 (below float32 resolution)."""

    def __init__(self, dataset) -> None:
        self.n_items = dataset.n_items
        self.targets = dataset.split("test")[1]
        self.cursor = 0  # evaluate scores the test cases in order, batch after batch

    def score(self, histories):
        out = torch.ones(len(histories), self.n_items + 1, dtype=torch.float64)
        rows = torch.arange(len(histories))
        out[rows, torch.as_tensor(self.targets[self.cursor : self.cursor + len(histories)])] += 1e-12
        self.cursor += len(histories)
        return out


def test_float64_scores_keep_their_precision_through_evaluate(tiny_synthetic):
    result = evaluate(NearTies(tiny_synthetic), tiny_synthetic, "test")
    assert (result.ranks == 0).all()  # a float32 cast would make every case a tie, rank n_items - 1


def test_finite_checks_name_the_place():
    assert ensure_finite_loss(torch.tensor(1.5), "epoch 1, step 2") == 1.5
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(NonFiniteError, match="epoch 3, step 7"):
            ensure_finite_loss(torch.tensor(bad), "epoch 3, step 7")
    scores = torch.zeros(2, 4)
    scores[:, 0] = -math.inf  # the padding column is allowed to be -inf
    ensure_finite_scores(scores, "validation")
    scores[1, 2] = math.nan
    with pytest.raises(NonFiniteError, match=r"validation after epoch 2 hold 1 non-finite values \(1 NaN\)"):
        ensure_finite_scores(scores, "validation after epoch 2")


def test_trainer_stops_on_a_nan_loss_naming_epoch_and_step(tmp_path, tiny_synthetic):
    calls = []

    def nan_at_third_step(**kwargs):
        calls.append(1)
        value = math.nan if len(calls) == 3 else 0.0
        return kwargs["items"].sum() * 0.0 + value

    config = SeqRecConfig(out=tmp_path / "run", backbone="sasrec", loss="full_ce", epochs=2, **SMALL)
    with pytest.raises(NonFiniteError, match=r"training loss is nan at epoch 1, step 3"):
        train_seqrec(config, dataset=tiny_synthetic, extra_loss=nan_at_third_step)
    assert len(calls) == 3  # it stopped there, before any further step
    assert not (tmp_path / "run" / "results.json").exists()  # no results from a diverged run


def test_trainer_stops_on_an_infinite_loss(tmp_path, tiny_synthetic):
    def inf_loss(**kwargs):
        return kwargs["items"].sum() * 0.0 + math.inf

    config = SeqRecConfig(out=tmp_path / "run", backbone="gru4rec", loss="said_cosine", epochs=1, **SMALL)
    with pytest.raises(NonFiniteError, match=r"training loss is inf at epoch 1, step 1"):
        train_seqrec(config, dataset=tiny_synthetic, extra_loss=inf_loss)


class NanWhenEvaluated(nn.Module):
    """Item embeddings that are fine while training and NaN in eval mode (what validation scores)."""

    def __init__(self, n_rows: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(n_rows, dim)

    @property
    def weight(self) -> torch.Tensor:
        w = self.table.weight
        return w if self.training else w * torch.nan

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids)


def test_trainer_stops_on_nan_validation_scores(tmp_path, tiny_synthetic):
    config = SeqRecConfig(out=tmp_path / "run", backbone="sasrec", loss="full_ce", epochs=2, **SMALL)
    embedding = NanWhenEvaluated(tiny_synthetic.n_items + 1, 16)
    with pytest.raises(NonFiniteError, match="validation after epoch 1"):
        train_seqrec(config, dataset=tiny_synthetic, item_embedding=embedding)


def test_said_trainer_stops_on_a_nan_loss(tmp_path, tiny_synthetic, monkeypatch):
    from semrec_worker.lm import load_language_model
    from semrec_worker.methods.said.settings import TrainSAIDConfig
    from semrec_worker.methods.said.trainer import SAIDTrainer

    config = TrainSAIDConfig(data=DATA, llm="tiny", out=tmp_path / "run", epochs=1, max_caption_tokens=8,
                             eval_items=4, max_items=16, batch_size=8, threads=1, projector="table")  # fmt: skip
    (tmp_path / "run").mkdir()
    trainer = SAIDTrainer(config, tmp_path / "run", tiny_synthetic, load_language_model("tiny"))
    real_step = trainer.step
    steps = []

    def step(rows: np.ndarray):
        steps.append(1)
        loss, hits, count = real_step(rows)
        return (math.nan if len(steps) == 2 else loss), hits, count

    monkeypatch.setattr(trainer, "step", step)
    with pytest.raises(NonFiniteError, match=r"training loss is nan at epoch 1, step 2 of 2"):
        trainer.fit()


def test_tslrec_user_sft_stops_on_a_nan_loss():
    from semrec_worker.lm import load_language_model
    from semrec_worker.methods.tslrec.model import TSLRecSettings, UserSFTModel, add_lora, train_user_sft

    torch.manual_seed(0)
    lm = load_language_model("tiny")
    settings = TSLRecSettings(n_groups=3, precision="fp32", sft_batch_size=4, max_history=5, instruction="items:")
    model = UserSFTModel(add_lora(lm.model, settings), lm.tokenizer, 8, 3, settings.instruction)
    id_vectors = torch.cat([torch.zeros(1, 8), torch.randn(6, 8)])
    id_vectors[3] = math.nan  # a diverged ID embedding: every user who saw item 3 gets a NaN prediction
    sequences = [np.array([1, 2]), np.array([3, 4]), np.array([5, 6]), np.array([2, 3])]
    targets = np.full((4, 3), 1 / 3)
    with pytest.raises(NonFiniteError, match=r"TSLRec user SFT step 1"):
        train_user_sft(model, sequences, targets, id_vectors, settings, progress=False)


def test_llmemb_scft_stops_on_a_nan_loss(tmp_path, monkeypatch):
    from semrec_worker.data import DataConfig, load_dataset
    from semrec_worker.lm import load_language_model
    from semrec_worker.methods.llmemb import model as llmemb
    from semrec_worker.methods.llmemb.settings import SCFTSettings

    def nan_loss(self, x, y):
        return (x * y).sum() * math.nan

    monkeypatch.setattr(llmemb.SymmetricInfoNCE, "forward", nan_loss)
    small = load_dataset(DataConfig(data="synthetic:users=60,items=30,avg_len=6,seed=3"))
    settings = SCFTSettings(
        llm="tiny", batch_size=6, max_steps=3, precision="fp32", checkpoint_every_steps=2, max_prompt_tokens=40
    )
    with pytest.raises(NonFiniteError, match=r"SCFT step 1"):
        llmemb.train_scft(load_language_model("tiny"), small, settings, tmp_path, progress=False)
