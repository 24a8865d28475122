"""LLMEmb: prompts and attribute-dropped views (eq. 3), the contrastive loss (eq. 5), a few SCFT steps with
LoRA on the tiny LM (only adapters train; the adapter saves, reloads and resumes), and the RAT adapter
(eq. 6) and collaborative alignment (eqs. 7-8) in isolation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec_worker.lm import load_language_model
from semrec_worker.methods.llmemb.model import (
    ADAPTER_DIR,
    CHECKPOINT,
    CollaborativeAlignment,
    LLMEmbAdapter,
    LLMEmbSCFT,
    attribute_view,
    collaborative_similarity,
    embed_views,
    item_prompt,
    train_scft,
)
from semrec_worker.methods.llmemb.settings import SCFTSettings, TrainRATConfig
from semrec_worker.methods.symmetric_infonce import SymmetricInfoNCE

SMALL = "synthetic:users=60,items=30,avg_len=6,seed=3"
ATTRS = {"title": "T" * 150, "brand": "Acme", "category": "Lab > Pipettes", "color": "red", "size": "10 ml"}



def tiny_settings(**kw) -> SCFTSettings:
    return SCFTSettings(**{"llm": "tiny", "batch_size": 6, "max_steps": 3, "precision": "fp32", "checkpoint_every_steps": 2,
                           "max_prompt_tokens": 40, **kw})  # fmt: skip


def test_prompt_format_and_value_cut():
    prompt = item_prompt({"title": "T" * 150, "brand": "Acme"}, "scientific")
    assert prompt == "The scientific item has the following attributes: title is " + "T" * 100 + "; brand is Acme;"


def test_views_drop_forty_percent_and_never_everything():
    rng = np.random.default_rng(0)
    views = [attribute_view(ATTRS, 0.4, rng) for _ in range(50)]
    assert all(len(v) == 3 for v in views)  # round(0.4 * 5) = 2 dropped
    assert all(list(v) == [k for k in ATTRS if k in v] for v in views)  # order kept
    assert len({tuple(v) for v in views}) > 3  # random choices
    assert attribute_view({"title": "x"}, 0.4, rng) == {"title": "x"}
    assert len(attribute_view({"a": "1", "b": "2"}, 0.9, rng)) == 1


def test_symmetric_infonce_prefers_aligned_pairs_and_learns_its_temperature():
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    loss = SymmetricInfoNCE(0.1, learnable=True)
    aligned, shuffled = loss(x, x + 0.01 * torch.randn(16, 8)), loss(x, torch.randn(16, 8))
    assert aligned < shuffled
    assert torch.allclose(loss(x, x.flip(0)), loss(x.flip(0), x))  # symmetric in its two inputs
    aligned.backward()
    assert loss.log_inverse_temperature.grad is not None
    assert not list(SymmetricInfoNCE(2.0, learnable=False).parameters())
    with pytest.raises(ValueError):
        loss(x, x[:3])


def test_scft_trains_only_lora_and_resumes(small, tmp_path):
    lm = load_language_model("tiny")
    base_before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    result = train_scft(lm, small, tiny_settings(), tmp_path, progress=False)
    assert result.steps == 3 and len(result.history) == 3 and np.isfinite([h["loss"] for h in result.history]).all()
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    changed = [n for n, p in result.model.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert changed  # lora_B starts at zero; training moved it
    base_after = result.model.get_base_model().state_dict()
    frozen = [k for k in base_before if k.replace(".weight", ".base_layer.weight") in base_after]
    assert frozen and all(torch.equal(base_before[k], base_after[k.replace(".weight", ".base_layer.weight")])
                          for k in frozen)  # fmt: skip
    assert (tmp_path / CHECKPOINT).exists()
    assert set(result.probe) == {"before", "after"}
    after = result.probe["after"]
    k = small.n_items // 2
    assert after["probe_items"] == k  # min(--probe-items, half the items)
    assert after["view_acc@1"] * 2 * k == pytest.approx(round(after["view_acc@1"] * 2 * k), abs=1e-2)  # hits of 2k
    assert after["view_mean_rank"] >= 1.0 and (after["view_acc@1"] == 1.0) == (after["view_mean_rank"] == 1.0)
    resumed = train_scft(load_language_model("tiny"), small, tiny_settings(max_steps=5), tmp_path, progress=False)
    assert resumed.steps == 5 and [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5]


def test_scft_table_and_adapter_round_trip(small, tmp_path):
    table = LLMEmbSCFT(tiny_settings(max_steps=2), run_dir=tmp_path, lm=load_language_model("tiny"),
                       progress=False).fit(small)  # fmt: skip
    assert table.ids == small.item_ids and table.dim == 64
    assert table.metadata["method"] == "llmemb" and table.metadata["scft_steps"] == 2
    assert (tmp_path / ADAPTER_DIR / "adapter_config.json").exists()
    assert len(json.loads((tmp_path / "history.json").read_text())) == 2 and (tmp_path / "scft_loss.png").exists()
    reloaded = LLMEmbSCFT(tiny_settings(), adapter=tmp_path / ADAPTER_DIR, lm=load_language_model("tiny"),
                          progress=False).fit(small)  # fmt: skip
    np.testing.assert_allclose(reloaded.vectors, table.vectors, atol=1e-4)
    untrained = LLMEmbSCFT(tiny_settings(max_steps=0), lm=load_language_model("tiny"), progress=False).fit(small)
    assert not np.allclose(untrained.vectors, table.vectors, atol=1e-4)
    with pytest.raises(UserError, match="adapter"):
        LLMEmbSCFT(tiny_settings(), adapter=tmp_path, lm=load_language_model("tiny")).fit(small)


def test_rat_adapter_gives_the_full_item_matrix(small):
    rng = np.random.default_rng(0)
    table = ItemTable(small.item_ids, rng.normal(size=(small.n_items, 40)))
    adapter = LLMEmbAdapter.from_table(table, small, width=12, d_m=16)
    matrix = adapter.weight
    assert matrix.shape == (small.n_items + 1, 12) and torch.all(matrix[0] == 0)
    assert adapter.semantic.shape == (small.n_items + 1, 16) and "semantic" not in dict(adapter.named_parameters())
    rows = adapter(torch.tensor([[0, 3, 5]]))
    assert torch.all(rows[0, 0] == 0) and torch.allclose(rows[0, 1:], matrix[[3, 5]], atol=1e-6)
    matrix.sum().backward()
    assert all(p.grad is not None for p in adapter.parameters())
    default = LLMEmbAdapter.from_table(table, small, width=12)  # d_m = the table's width: no reduction
    assert default.semantic.shape[1] == 40 and default.project[0].out_features == 20  # hidden = d_m / 2
    # the item matrix has the backbone's full rank (d_m / 2 >= d), not the rank <= d_m / 2 of a narrow bottleneck
    assert torch.linalg.matrix_rank(default.weight.detach()[1:]).item() == 12
    with pytest.raises(UserError, match="at least the backbone width"):
        LLMEmbAdapter.from_table(table, small, width=12, d_m=8)



def test_rat_adapter_can_start_as_the_whitening_of_its_frozen_embeddings(small):
    rng = np.random.default_rng(1)
    spread = np.geomspace(30.0, 0.1, 40)  # variance in a few directions, as in a mean-pooled LM table
    table = ItemTable(small.item_ids, rng.normal(size=(small.n_items, 40)) * spread + 5.0)
    for whiten in (False, True):
        adapter = LLMEmbAdapter.from_table(table, small, width=12, d_m=32, whiten=whiten)
        hidden = adapter.project[0](adapter.semantic[1:]).detach().double()
        assert hidden.mean(dim=0).abs().max().item() < 1e-4  # no shared offset either way
        assert adapter.weight[1:].norm(dim=1).mean().item() == pytest.approx(1.0, rel=1e-4)
        spectrum = torch.linalg.eigvalsh(torch.cov(hidden.T))
        if whiten:  # every one of the d_m / 2 hidden directions at unit variance
            torch.testing.assert_close(torch.cov(hidden.T), torch.eye(16, dtype=torch.float64), atol=1e-3, rtol=0)
        else:
            assert spectrum.max() / spectrum.min() > 100


def test_rat_takes_the_adapter_start_and_refuses_item_layer_settings_it_would_ignore():
    whitened = TrainRATConfig(scft="a", collaborative="b", out="x", adapter_start="whitened")
    assert whitened.seqrec.model.items.adapter_start == "whitened"
    assert TrainRATConfig(scft="a", collaborative="b", out="x").seqrec.model.items.adapter_start == "centred"
    for setting in ({"item_layer": "dual"}, {"adapter_hidden": 64}, {"init_start": "whitened"}):
        with pytest.raises(ValueError, match="would be ignored"):
            TrainRATConfig(scft="a", collaborative="b", out="x", **setting)


def test_collaborative_alignment_pulls_the_adapter_towards_sasrec(small):
    torch.manual_seed(0)
    n, width = small.n_items, 8
    collaborative = torch.cat([torch.zeros(1, width), torch.randn(n, width)])
    adapter = LLMEmbAdapter(torch.cat([torch.zeros(1, 16), torch.randn(n, 16)]), width)
    align = CollaborativeAlignment(collaborative, alpha=1.0, temperature=2.0)
    targets = torch.tensor([0, 1, 2, 2, 3, 4, 5, 6, 7])  # padding is ignored; item 2 counts at both positions
    optimizer = torch.optim.Adam(adapter.parameters(), lr=1e-2)
    first = align(items=adapter.weight, targets=targets).item()
    for _ in range(30):
        loss = align(model=None, items=adapter.weight, hidden=None, targets=targets)  # the trainer's call
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first
    weighted = CollaborativeAlignment(collaborative, alpha=0.01)(items=adapter.weight, targets=targets)
    unweighted = CollaborativeAlignment(collaborative, alpha=1.0)(items=adapter.weight, targets=targets)
    assert weighted.item() == pytest.approx(0.01 * unweighted.item())
    assert align(items=adapter.weight, targets=torch.tensor([0, 4, 4])).item() == 0.0  # one item: no negatives
    with pytest.raises(UserError, match="widths"):
        align(items=torch.zeros(n + 1, 3), targets=targets)


def test_view_retrieval_finds_identical_views_and_misses_unrelated_ones(small):
    """The probe itself: views that drop nothing are the same prompt (every item finds its twin, rank 1); an
    "LM" whose embedding ignores the text ranks the right view last (ties count against it)."""
    from semrec_worker.methods.llmemb.model import probe_rows, view_retrieval

    lm = load_language_model("tiny")
    # the tiny LM's tokenizer is character-level: 256 tokens keep the prompts whole (40 would cut them all to
    # the shared instruction, identical for every item)
    settings = tiny_settings(drop_fraction=0.0, max_prompt_tokens=256)
    rows = probe_rows(small.n_items, settings)
    same = view_retrieval(lm.model, lm.tokenizer, small, rows, settings, "cpu")
    assert same["view_acc@1"] == 1.0 and same["view_mean_rank"] == 1.0
    # the inner product does not normalise: another item of larger norm can outscore the identical twin
    assert 1.0 <= same["view_mean_rank_dot"] <= len(rows)
    cut = view_retrieval(lm.model, lm.tokenizer, small, rows, tiny_settings(drop_fraction=0.0), "cpu")
    assert cut["view_acc@1"] == 0.0  # every prompt cut to the same 40 characters: all tie, none is found

    from types import SimpleNamespace

    class Constant(torch.nn.Module):  # every prompt -> the same states: all views tie with the right one
        config = SimpleNamespace(hidden_size=4)

        def forward(self, input_ids, attention_mask):
            return SimpleNamespace(last_hidden_state=torch.ones(*input_ids.shape, 4))

    blind = view_retrieval(Constant(), lm.tokenizer, small, rows, settings, "cpu")
    assert blind["view_acc@1"] == 0.0 and blind["view_mean_rank"] == len(rows)  # ties count against it


def test_scft_step_uses_the_papers_loss_on_the_top_layers_only(small):
    """Inner product, the positive out of the denominator, a trainable temperature started from the first batch's
    scale, LoRA only in the last layer: every history row says how hard its batch was."""
    lm = load_language_model("tiny")
    settings = tiny_settings(lora_top_layers=1, batch_size=8, forward_chunk=3, max_steps=2, lr=1e-2)
    result = train_scft(lm, small, settings, None, progress=False)
    last = lm.model.config.num_hidden_layers - 1
    lora = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert lora and all(f"layers.{last}." in n for n in lora)
    first, second = result.history
    assert first["items"] == 8 and first["batch_acc@1"] in {k / 16 for k in range(17)}  # 8 rows x 2 directions
    assert first["temperature"] > 0.05 * 10  # dot products of raw states: a much larger scale than cosine's 0.05
    assert second["temperature"] != first["temperature"]  # trained
    assert all(np.isfinite(h["loss"]) for h in result.history)


def test_chunked_view_embedding_keeps_the_order(small):
    """Length-grouped forwards of a few prompts each give every prompt the embedding a single forward gives."""
    from semrec_worker.lm.backends import TransformersBackend
    from semrec_worker.lm.loader import LanguageModel

    lm = load_language_model("tiny")
    lm.model.eval()
    backend = TransformersBackend(LanguageModel(lm.model, lm.tokenizer, "t"), "mean", 8, 40, "fp32", "cpu", progress=False)
    texts = ["a b c d e f g h", "x", "the item has a long title and a brand", "brand is Acme", "y z"]
    with torch.no_grad():
        chunked = embed_views(backend, texts, 2)
        alone = torch.cat([backend.embed_batch([t]) for t in texts])
    torch.testing.assert_close(chunked, alone, atol=1e-4, rtol=1e-4)


def test_alignment_compares_with_the_collaborative_sasrecs_similarity(small):
    rows = np.random.default_rng(0).normal(size=(small.n_items, 4))
    assert collaborative_similarity(ItemTable(small.item_ids, rows, {"loss": "bce"})) == "dot"
    assert collaborative_similarity(ItemTable(small.item_ids, rows, {"loss": "said_cosine"})) == "cosine"
    align = CollaborativeAlignment.from_table(ItemTable(small.item_ids, rows, {"loss": "said_cosine"}), small)
    assert align.similarity == "cosine"
    scaled = torch.as_tensor(np.vstack([np.zeros((1, 4)), rows]), dtype=torch.float32)
    targets = torch.tensor([1, 2, 3, 4, 5])
    # cosine ignores the adapted rows' scale; the inner product does not
    assert align(items=3 * scaled, targets=targets).item() == pytest.approx(align(items=scaled, targets=targets).item(), rel=1e-5)
    dot = CollaborativeAlignment(scaled, similarity="dot")
    assert dot(items=3 * scaled, targets=targets).item() != pytest.approx(dot(items=scaled, targets=targets).item(), rel=1e-3)


def test_rat_trains_with_the_papers_bce_unless_told_otherwise():
    assert TrainRATConfig(scft="a", collaborative="b", out="x").seqrec.objective.loss == "bce"
    assert TrainRATConfig(scft="a", collaborative="b", out="x", loss="said_cosine").seqrec.objective.loss == "said_cosine"
    nested = TrainRATConfig(rat={"scft": "a", "collaborative": "b"}, seqrec={"out": "x", "objective": {"loss": "full_ce"}})
    assert nested.seqrec.objective.loss == "full_ce"


@pytest.mark.slow
def test_rat_trains_a_backbone_through_the_adapter_with_alignment(tmp_path, tiny_synthetic):
    """RAT end to end with the seqrec trainer: pretrained SASRec -> collaborative table; SCFT table -> adapter."""
    from semrec.cli import build_app
    from semrec.results import read_results
    from semrec_worker.training import SeqRecConfig, train_seqrec
    from typer.testing import CliRunner

    data = "synthetic:users=300,items=200,avg_len=10,seed=1"  # = tiny_synthetic
    small = dict(data=data, dim=16, max_len=10, batch_size=64, lr=5e-3, threads=1, dropout=0.0, epochs=1)
    train_seqrec(SeqRecConfig(out=tmp_path / "sasrec", backbone="sasrec", **small), dataset=tiny_synthetic)
    scft = ItemTable(tiny_synthetic.item_ids, np.random.default_rng(0).normal(size=(tiny_synthetic.n_items, 40)),
                     {"method": "llmemb"})  # fmt: skip
    scft.save(tmp_path / "scft" / "item_table.npz")
    args = ["train", "llmemb-rat", "--scft", str(tmp_path / "scft"), "--collaborative", str(tmp_path / "sasrec"),
            "--backbone", "gru4rec", "--d-m", "24", "--out", str(tmp_path / "rat")]  # fmt: skip
    args += [f"--{k.replace('_', '-')}={v}" for k, v in small.items() if k not in ("dropout",)] + ["--dropout", "0"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    runs = read_results(tmp_path / "rat" / "results.json").runs
    assert runs[0].method == "llmemb" and runs[0].backbone == "gru4rec"
    config = json.loads((tmp_path / "rat" / "config.json").read_text())["config"]["rat"]
    assert config["alpha"] == 0.01 and config["d_m"] == 24
    bad = CliRunner().invoke(build_app(), [*args[:-2], "--out", str(tmp_path / "x"), "--init", str(tmp_path / "scft")])
    assert bad.exit_code == 2 and "RAT builds its own item layer" in bad.output
