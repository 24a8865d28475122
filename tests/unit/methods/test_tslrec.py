"""TSLRec pieces on a tiny random Llama: pre-grouping, user-level SFT, item knowledge, gated fusion."""

import numpy as np
import pytest
import torch
from semrec_worker.lm import load_language_model
from semrec_worker.methods.tslrec.model import (
    GatedFusionEmbedding,
    TSLRecSettings,
    UserSFTModel,
    add_lora,
    category_distributions,
    item_knowledge,
    planned_sft_steps,
    pre_group,
    train_user_sft,
)


@pytest.fixture
def sft_model():
    torch.manual_seed(0)
    lm = load_language_model("tiny")
    settings = TSLRecSettings(n_groups=3, precision="fp32", sft_batch_size=8, sft_lr=5e-3, max_history=5,
                              instruction="items:", lora_dropout=0.0)  # fmt: skip
    model = UserSFTModel(add_lora(lm.model, settings), lm.tokenizer, 8, 3, settings.instruction)
    return model, settings


def test_category_distribution_by_hand():
    labels = np.array([0, 0, 1, 2])  # items 1..4
    dist = category_distributions([np.array([1, 2, 3]), np.array([4, 4]), np.array([], dtype=np.int64)], labels, 3)
    assert np.allclose(dist, [[2 / 3, 1 / 3, 0], [0, 0, 1], [0, 0, 0]])


def test_pre_group_separates_clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:3] * 10
    vectors = np.concatenate([c + rng.normal(size=(20, 4)) for c in centres])
    labels = pre_group(vectors, 3, seed=0)
    for block in range(3):
        assert len(set(labels[block * 20 : (block + 1) * 20])) == 1
    assert len(set(labels)) == 3


def test_padding_does_not_change_a_users_prediction(sft_model):
    model, _ = sft_model
    model.eval()
    vectors = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    with torch.no_grad():
        batched = model(vectors, mask)
        alone = model(vectors[:1, :2], mask[:1, :2])
    assert torch.allclose(batched[0], alone[0], atol=1e-5)
    assert torch.allclose(batched.sum(-1), torch.ones(2), atol=1e-6)


def test_sft_learns_and_only_trains_lora_and_heads(sft_model):
    model, settings = sft_model
    rng = np.random.default_rng(1)
    labels = np.array([0] * 10 + [1] * 10 + [2] * 10)
    id_vectors = torch.cat([torch.zeros(1, 8), torch.randn(30, 8)])
    sequences = [rng.choice(np.arange(1, 11) + 10 * rng.integers(3), size=3) for _ in range(32)]
    targets = category_distributions(sequences, labels, 3)
    base = {n: p.detach().clone() for n, p in model.lm.named_parameters() if "lora" not in n}
    lora = {n: p.detach().clone() for n, p in model.lm.named_parameters() if "lora_B" in n}
    full_batch = settings.model_copy(update={"sft_epochs": 25, "sft_batch_size": 32, "sft_lr": 1e-2})
    losses = train_user_sft(model, sequences, targets, id_vectors, full_batch, progress=False)
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    for name, before in base.items():
        assert torch.equal(before, dict(model.lm.named_parameters())[name]), name
    assert any(not torch.equal(v, dict(model.lm.named_parameters())[n]) for n, v in lora.items())
    knowledge, dist = item_knowledge(model, id_vectors, settings)
    assert knowledge.shape == (30, model.lm.config.hidden_size) and dist.shape == (30, 3)
    assert np.allclose(dist.sum(1), 1, atol=1e-5)
    assert knowledge.std(axis=0).mean() > 1e-3  # each item gets its own knowledge vector


def test_gated_fusion_embedding():
    rng = np.random.default_rng(0)
    layer = GatedFusionEmbedding(rng.normal(size=(5, 6)), rng.dirichlet(np.ones(3), 5), dim=4)
    weight = layer.weight
    assert weight.shape == (6, 4) and torch.equal(weight[0], torch.zeros(4))
    layer(torch.tensor([[0, 1, 5]])).sum().backward()
    assert layer.id_embedding.grad is not None and layer.project.weight.grad is not None
    assert layer.gate.weight.grad is not None and not layer.features.requires_grad


def test_fusion_starts_near_the_id_view_with_knowledge_of_the_same_scale():
    rng = np.random.default_rng(0)
    n, dim = 400, 256
    layer = GatedFusionEmbedding(rng.normal(size=(n, 576)) * 5, rng.dirichlet(np.ones(16), n), dim=dim)
    with torch.no_grad():
        z = layer.project(layer.features[1:])
        e = layer.id_embedding[1:]
        gate = torch.sigmoid(layer.gate(torch.cat([z, e], dim=-1)))
        fused = layer.weight[1:]
    ratio = (z.norm(dim=1).mean() / e.norm(dim=1).mean()).item()
    assert 0.7 < ratio < 1.4  # the default Linear init gave about 9 (sqrt(dim / 3))
    assert torch.allclose(gate, torch.full_like(gate, 0.0474), atol=1e-3)  # sigmoid(-3): the ID view first
    cos_id = torch.nn.functional.cosine_similarity(fused, e).mean().item()
    cos_knowledge = torch.nn.functional.cosine_similarity(fused, z).mean().item()
    assert cos_id > 0.99 and cos_knowledge < 0.2


def test_pre_grouping_clusters_directions_not_norms():
    from semrec_worker.methods.tslrec.model import pre_group

    rng = np.random.default_rng(1)
    directions = np.repeat(np.eye(2), 20, axis=0) + rng.normal(scale=0.05, size=(40, 2))
    norms = np.tile(np.r_[np.full(10, 0.1), np.full(10, 10.0)], 2)[:, None]  # popular and rare items per direction
    labels = pre_group(directions * norms, n_groups=2)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[20]


@pytest.mark.slow
def test_train_tslrec_job_end_to_end_and_exports(tmp_path):
    from semrec.bundle import Bundle
    from semrec_worker.export import export_run
    from semrec_worker.methods.tslrec.settings import TSLRecJobConfig
    from semrec_worker.methods.tslrec.train import train_tslrec
    from semrec_worker.training import SeqRecConfig, train_seqrec

    data = "synthetic:users=120,items=80,avg_len=8,seed=3"
    common = {"data": data, "backbone": "sasrec", "dim": 16, "epochs": 2, "batch_size": 64}
    train_seqrec(SeqRecConfig(**common, out=tmp_path / "sasrec", loss="full_ce"))
    result = train_tslrec(
        TSLRecJobConfig(**common, out=tmp_path / "tslrec", pretrained=tmp_path / "sasrec", llm="tiny",
                        n_groups=3, sft_max_steps=2, sft_batch_size=16, precision="fp32", instruction="items:")
    )  # fmt: skip
    assert result.runs and all(run.method == "tslrec" for run in result.runs)
    stage1 = tmp_path / "tslrec" / "tslrec"
    knowledge = np.load(stage1 / "knowledge.npz")
    assert knowledge["distributions"].shape[1] == 3 and (stage1 / "lora" / "adapter_config.json").exists()
    assert TSLRecJobConfig.load(stage1, out=tmp_path / "tslrec").pretrained == tmp_path / "sasrec"
    export_run(tmp_path / "tslrec")
    bundle = Bundle.load(tmp_path / "tslrec")
    assert bundle.item_vectors.shape[1] == 16


@pytest.mark.slow
def test_stage1_reuse_trains_the_same_backbone_and_rejects_another_catalogue(tmp_path):
    from semrec.errors import UserError
    from semrec_worker.methods.tslrec.settings import TSLRecJobConfig
    from semrec_worker.methods.tslrec.train import train_tslrec
    from semrec_worker.training import SeqRecConfig, train_seqrec

    data = "synthetic:users=100,items=60,avg_len=8,seed=4"
    common = {"data": data, "backbone": "gru4rec", "dim": 16, "epochs": 2, "batch_size": 64}
    stage1 = {"llm": "tiny", "n_groups": 3, "sft_max_steps": 2, "sft_batch_size": 16, "precision": "fp32"}
    train_seqrec(SeqRecConfig(**common, out=tmp_path / "sasrec", loss="full_ce"))
    full = train_tslrec(TSLRecJobConfig(**common, **stage1, out=tmp_path / "full", pretrained=tmp_path / "sasrec"))
    reused = train_tslrec(TSLRecJobConfig(**common, out=tmp_path / "reused", stage1=tmp_path / "full"))

    first, second = np.load(tmp_path / "full/tslrec/knowledge.npz"), np.load(tmp_path / "reused/tslrec/knowledge.npz")
    assert np.array_equal(first["knowledge"], second["knowledge"]) and np.array_equal(first["labels"], second["labels"])
    assert not (tmp_path / "reused/tslrec/lora").exists()  # no LM was loaded or tuned
    for a, b in zip(full.runs, reused.runs, strict=True):
        assert a.metrics == pytest.approx(b.metrics, abs=1e-6)

    with pytest.raises(ValueError, match="exactly one of --pretrained"):
        TSLRecJobConfig(**common, out=tmp_path / "x")
    with pytest.raises(ValueError, match="--n-groups, --sft-max-steps: stage-1 settings cannot change"):
        TSLRecJobConfig(**common, out=tmp_path / "x", stage1=tmp_path / "full", n_groups=4, sft_max_steps=3)
    other = {**common, "data": "synthetic:users=100,items=90,avg_len=8,seed=5"}
    with pytest.raises(UserError, match="built on another catalogue"):
        train_tslrec(TSLRecJobConfig(**other, out=tmp_path / "other", stage1=tmp_path / "full"))


def test_sft_time_budget_stops_after_the_step_that_reaches_it(sft_model):
    model, settings = sft_model
    labels = np.array([0] * 10 + [1] * 10 + [2] * 10)
    id_vectors = torch.cat([torch.zeros(1, 8), torch.randn(30, 8)])
    sequences = [np.array([1 + (u % 30), 1 + ((u + 1) % 30)]) for u in range(32)]
    targets = category_distributions(sequences, labels, 3)
    planned = settings.model_copy(update={"sft_epochs": 3})
    assert planned_sft_steps(sequences, planned) == 12  # 32 users in batches of 8, three passes
    budgeted = planned.model_copy(update={"sft_max_train_minutes": 1e-9})
    losses = train_user_sft(model, sequences, targets, id_vectors, budgeted, progress=False)
    assert len(losses) == 1  # at least one step, then the spent budget stops it
    generous = planned.model_copy(update={"sft_max_train_minutes": 60.0})
    assert len(train_user_sft(model, sequences, targets, id_vectors, generous, progress=False)) == 12
