"""The method refresh encoders on the tiny LM: `llmemb` (RAT runs) reproduces the bundle's trained item vectors
and embeds new items; `said` (stage-2 runs from a SAID table) gives new items vectors through the frozen LM;
`semrec refresh --encoder` picks them, and a run without the asked-for encoder exits 2."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from semrec.bundle import Bundle
from semrec.cli import build_app
from semrec.item_table import ItemTable
from semrec.serving_space import ServingSpace
from semrec_worker.data.records import Item
from semrec_worker.export.onnx import export_run
from semrec_worker.lm import load_language_model
from semrec_worker.methods.llmemb.job import train_llmemb_rat
from semrec_worker.methods.llmemb.model import LLMEmbSCFT
from semrec_worker.methods.llmemb.rat import train_rat
from semrec_worker.methods.llmemb.settings import SCFTSettings, TrainRATConfig
from semrec_worker.methods.registry import load_item_encoder, train_backbone
from semrec_worker.training import SeqRecConfig, train_seqrec
from typer.testing import CliRunner

torch.set_num_threads(1)

SMALL = "synthetic:users=60,items=30,avg_len=6,seed=3"
SEQREC = dict(data=SMALL, dim=8, max_len=8, batch_size=32, lr=5e-3, threads=1, dropout=0.0, epochs=1)



def new_items() -> list[Item]:
    return [Item("fresh-0", title="cordless pipette rack", brand="Acme", categories=["Lab", "Racks"]),
            Item("fresh-1", title="amber glass bottle 250 ml", brand="Vitro", extra={"color": "amber"})]  # fmt: skip


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_serving_space_keeps_the_models_ranking_and_caps_longer_vectors():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 6)) * np.linspace(0.5, 3, 20)[:, None]
    query = rng.normal(size=6)
    for similarity in ("cosine", "dot"):
        space = ServingSpace.fit(vectors, similarity)
        served = space.apply(vectors)
        np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-6)
        served_query = np.concatenate([query / np.linalg.norm(query), np.zeros(space.extra_dims())])
        model_scores = vectors @ query if similarity == "dot" else (vectors @ query) / np.linalg.norm(vectors, axis=1)
        assert np.array_equal(np.argsort(-(served @ served_query)), np.argsort(-model_scores))
        assert ServingSpace.from_dict(space.to_dict(6)) == space
    longer = ServingSpace("dot", 1.0).apply(vectors[:1] * 100)  # beyond the trained norms: capped, still unit
    np.testing.assert_allclose(np.linalg.norm(longer, axis=1), 1.0, atol=1e-6)


@pytest.fixture(scope="module")
def rat_run(tmp_path_factory, small_shared):
    """SCFT (2 LoRA steps, SCFT --dim PCA) -> SASRec -> RAT on the tiny LM, exported as a bundle."""
    small = copy.deepcopy(small_shared)
    root = tmp_path_factory.mktemp("llmemb")
    (root / "scft").mkdir()
    # the tiny LM's tokens are characters: a short domain and a long cap keep the prompts' attributes
    settings = SCFTSettings(llm="tiny", batch_size=6, max_steps=2, precision="fp32", max_prompt_tokens=160, dim=24,
                            probe_items=4, domain="lab", embed_batch_size=8)  # fmt: skip
    scft = LLMEmbSCFT(settings, run_dir=root / "scft", lm=load_language_model("tiny"), progress=False).fit(small)
    scft.save(root / "scft" / "item_table.npz")
    train_seqrec(SeqRecConfig(out=root / "sasrec", backbone="sasrec", **SEQREC), dataset=small)
    rat = TrainRATConfig(out=root / "rat", backbone="sasrec", scft=str(root / "scft"),
                         collaborative=str(root / "sasrec"), d_m=12, **SEQREC)  # fmt: skip
    train_llmemb_rat(rat)  # what `semrec train llmemb-rat` runs
    export_run(root / "rat")
    return root


@pytest.mark.slow
def test_llmemb_encoder_reproduces_the_rat_bundle_and_embeds_new_items(rat_run, small):
    spec = json.loads((rat_run / "rat" / "refresh_encoder" / "encoder.json").read_text())
    assert spec["kind"] == "llmemb" and spec["lm"] == "tiny" and (rat_run / "rat" / "refresh_encoder" / "lora").is_dir()
    parts = json.loads((rat_run / "rat" / "config.json").read_text())["parts"]
    assert parts["item_layer"] == "llmemb-adapter"
    assert parts["extra_loss"] == "llmemb-alignment"
    bundle = Bundle.load(rat_run / "rat")
    encoder = load_item_encoder(rat_run / "rat", "llmemb")
    encoder.progress = False
    existing = encoder.encode(small.items)
    assert existing.shape == bundle.item_vectors.shape
    assert cosines(existing, bundle.item_vectors).min() >= 0.999  # the item vector is purely adapter-derived
    assert np.ptp(bundle.item_vectors, axis=0).max() > 0.05  # not trivially equal rows
    fresh = encoder.encode(new_items())
    np.testing.assert_allclose(np.linalg.norm(fresh, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(fresh[0], fresh[1])
    assert load_item_encoder(rat_run / "rat").kind == "llmemb"  # auto = the run's own


@pytest.mark.slow
def test_semrec_refresh_with_the_llmemb_encoder(rat_run, small, redis_server, tmp_path):
    from semrec.settings import redis_settings
    from semrec.store import load_bundle

    run = rat_run / "rat"
    args = ["--redis", redis_server.url, "--catalog", "rat"]
    published = CliRunner().invoke(build_app(), ["publish", "--run", str(run), "--items",
                                                 _write_items(tmp_path / "v1.jsonl", small.items), *args])  # fmt: skip
    assert published.exit_code == 0, published.output
    # a new id with the text of an existing item: its refreshed vector must be the one the export computed
    # for that item through the trained model (an independent path: RAT adapter -> export, not the encoder)
    twin = dataclasses.replace(small.items[3], item_id="twin-of-3")
    updated = _write_items(tmp_path / "v2.jsonl", [*small.items, *new_items(), twin])
    refreshed = CliRunner().invoke(build_app(), ["refresh", "--items", updated, "--encoder", "llmemb", *args])
    assert refreshed.exit_code == 0 and "added 3, changed 0, removed 0" in refreshed.output, refreshed.output
    bundle = load_bundle(redis_settings(redis_server.url).client(), "rat").bundle
    exported = Bundle.load(run)
    assert bundle.item_ids[-1] == "twin-of-3"
    assert cosines(bundle.item_vectors[-1:], exported.item_vectors[3:4]).min() >= 0.999
    encoder = load_item_encoder(run)
    encoder.progress = False
    np.testing.assert_allclose(bundle.item_vectors[small.n_items : -1], encoder.encode(new_items()), atol=1e-5)
    np.testing.assert_array_equal(bundle.item_vectors[: small.n_items], Bundle.load(run).item_vectors)
    again = CliRunner().invoke(build_app(), ["refresh", "--items", updated, *args])
    assert again.exit_code == 0 and "nothing to publish" in again.output


def _rebuild_and_compare(run) -> None:
    """`semrec export refresh-encoder` on a finished run rebuilds the encoder its training saved."""
    import shutil

    directory = run / "refresh_encoder"
    before = dict(np.load(directory / "weights.npz"))
    spec = json.loads((directory / "encoder.json").read_text())
    shutil.rmtree(directory)
    result = CliRunner().invoke(build_app(), ["export", "refresh-encoder", "--run", str(run)])
    assert result.exit_code == 0, result.output
    after = dict(np.load(directory / "weights.npz"))
    assert sorted(after) == sorted(before) and json.loads((directory / "encoder.json").read_text()) == spec
    for key, value in before.items():
        np.testing.assert_allclose(after[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_export_refresh_encoder_rebuilds_the_llmemb_encoder(rat_run):
    _rebuild_and_compare(rat_run / "rat")


def test_rat_without_an_llmemb_table_saves_no_encoder(tmp_path, small):
    table = ItemTable(small.item_ids, np.random.default_rng(0).normal(size=(small.n_items, 12)), {"method": "x"})
    train_seqrec(SeqRecConfig(out=tmp_path / "sasrec", backbone="sasrec", **SEQREC), dataset=small)
    config = SeqRecConfig(out=tmp_path / "rat", backbone="sasrec", **SEQREC)
    train_rat(config, table, ItemTable.load(tmp_path / "sasrec"), d_m=10, dataset=small, scft_source=tmp_path)
    assert not (tmp_path / "rat" / "refresh_encoder").exists()
    result = CliRunner().invoke(build_app(), ["refresh", "--items", SMALL, "--run", str(tmp_path / "rat"),
                                              "--redis", "redis://127.0.0.1:1/0"])  # fmt: skip
    assert result.exit_code == 2 and "no refresh encoder" in result.output
    result = CliRunner().invoke(build_app(), ["refresh", "--items", SMALL, "--run", str(tmp_path / "rat"),
                                              "--encoder", "said"])  # fmt: skip
    assert result.exit_code == 2 and "said" in result.output
    result = CliRunner().invoke(build_app(), ["export", "refresh-encoder", "--run", str(tmp_path / "sasrec")])
    assert result.exit_code == 2 and "not a RAT run (llmemb)" in result.output


@pytest.fixture(scope="module")
def said_stage2(tmp_path_factory, small_shared):
    """SAID stage 1 (amortised projector, 1 epoch, tiny LM) -> SASRec initialised from it (PCA 128 -> 8)."""
    small = copy.deepcopy(small_shared)
    from semrec_worker.methods.said.settings import TrainSAIDConfig
    from semrec_worker.methods.said.trainer import train_said

    root = tmp_path_factory.mktemp("said")
    train_said(TrainSAIDConfig(data=SMALL, llm="tiny", out=root / "said", epochs=1, max_caption_tokens=12,
                               eval_items=2, batch_size=8, threads=1, projector="amortised", projector_hidden=16,
                               virtual_tokens=2), dataset=small)  # fmt: skip
    train_backbone(SeqRecConfig(out=root / "run", backbone="sasrec", init=str(root / "said"), **SEQREC), dataset=small)
    export_run(root / "run")
    return root


@pytest.mark.slow
def test_said_encoder_of_a_whitened_init_maps_new_items_through_the_same_whitening(said_stage2, small, tmp_path):
    config = SeqRecConfig(out=tmp_path / "white", backbone="sasrec", init=str(said_stage2 / "said"),
                          init_start="whitened", **SEQREC)  # fmt: skip
    train_backbone(config, dataset=small)
    run = tmp_path / "white"
    assert "pca_stds" in np.load(run / "refresh_encoder" / "weights.npz").files
    spec, actual, predicted = _saved_said_encoder_fit(run, small)
    assert spec["fit_cosine"] == pytest.approx(float((predicted * actual).sum(1).mean()), abs=2e-3)
    _rebuild_and_compare(run)


def _saved_said_encoder_fit(run, small):
    """(the saved spec, the trained rows in serving space, what the saved encoder gives the same items)."""
    spec = json.loads((run / "refresh_encoder" / "encoder.json").read_text())
    encoder = load_item_encoder(run, "said")
    encoder.progress = False
    trained, _ = ItemTable.load(run).aligned(small.item_ids)
    return spec, encoder.serving.apply(trained), encoder.encode(small.items)


def _write_items(path, items):
    path.write_text("".join(json.dumps(item.to_json()) + "\n" for item in items))
    return str(path)


@pytest.mark.slow
def test_said_encoder_refreshes_new_items_only_and_is_idempotent(said_stage2, small, redis_server, tmp_path):
    from semrec.settings import redis_settings
    from semrec.store import load_bundle
    from semrec_worker.commands.publish import PublishConfig, publish
    from semrec_worker.commands.refresh import RefreshConfig, refresh

    run = said_stage2 / "run"
    spec = json.loads((run / "refresh_encoder" / "encoder.json").read_text())
    assert spec["kind"] == "said" and spec["projector"] == "amortised" and spec["row_epochs"] == 0
    assert spec["fit_items"] == small.n_items
    checkpoint = (said_stage2 / "said" / "checkpoint.pt").read_bytes()

    encoder = load_item_encoder(run, "said")
    encoder.progress = False
    fresh = encoder.encode(new_items())
    assert fresh.shape == (2, spec["dim"]) and not np.allclose(fresh[0], fresh[1])
    np.testing.assert_allclose(np.linalg.norm(fresh, axis=1), 1.0, atol=1e-5)
    encoder.row_epochs = 2  # per-row training of the new items moves their prefixes
    trained = encoder.encode(new_items())
    assert not np.allclose(trained, fresh, atol=1e-4)

    publish(PublishConfig(run=run, redis=redis_server.url, catalog="said",
                          items=_write_items(tmp_path / "v1.jsonl", small.items)))  # fmt: skip
    client = redis_settings(redis_server.url).client()
    first = load_bundle(client, "said").bundle
    updated = _write_items(tmp_path / "v2.jsonl", [*small.items, *new_items()])
    summary = refresh(RefreshConfig(catalog="said", items=updated, redis=redis_server.url, encoder="said"))
    assert summary["published"] and (summary["added"], summary["changed"], summary["unchanged"]) == (2, 0, small.n_items)
    second = load_bundle(client, "said").bundle
    assert second.item_ids == first.item_ids + ["fresh-0", "fresh-1"] and second.metadata["refresh"]["encoder"] == "said"
    np.testing.assert_array_equal(second.item_vectors[: small.n_items], first.item_vectors)  # existing untouched
    np.testing.assert_allclose(second.item_vectors[small.n_items :], fresh, atol=1e-5)
    again = refresh(RefreshConfig(catalog="said", items=updated, redis=redis_server.url))
    assert again["published"] is False and again["version"] == summary["version"]
    assert (said_stage2 / "said" / "checkpoint.pt").read_bytes() == checkpoint  # the SAID run is never written


@pytest.mark.slow
def test_said_fit_cosine_is_what_the_saved_encoder_gives_the_catalogues_own_items(said_stage2, small):
    """What `fit_cosine` promises: the saved encoder maps each catalogue item close to its trained row (and
    clearly closer than to another item's row)."""
    run = said_stage2 / "run"
    spec, actual, predicted = _saved_said_encoder_fit(run, small)
    assert spec["fit_cosine"] == pytest.approx(float((predicted * actual).sum(1).mean()), abs=2e-3)
    assert spec["fit_cosine"] > float((predicted * np.roll(actual, 1, axis=0)).sum(1).mean()) + 0.05


@pytest.mark.slow
def test_said_linear_projection_maps_new_items_with_the_trained_layer(said_stage2, small, tmp_path):
    config = SeqRecConfig(out=tmp_path / "linear", backbone="sasrec", init=str(said_stage2 / "said"),
                          projection="linear", **SEQREC)  # fmt: skip
    train_backbone(config, dataset=small)
    spec = json.loads((tmp_path / "linear" / "refresh_encoder" / "encoder.json").read_text())
    assert spec["projection"] == "linear" and spec["fit_cosine"] > 0.999  # exact: z -> the trained layer
    assert "pca_mean" not in np.load(tmp_path / "linear" / "refresh_encoder" / "weights.npz").files
    _rebuild_and_compare(tmp_path / "linear")


def test_an_encoder_saved_with_the_old_bf16_key_keeps_its_precision():
    from semrec_worker.methods.llmemb.refresh_encoder import spec_precision

    assert [spec_precision({"bf16": v}) for v in (True, False, None)] == ["bf16", "fp32", "auto"]
    assert spec_precision({}) == "auto" and spec_precision({"precision": "fp32", "bf16": True}) == "fp32"


@pytest.mark.slow
def test_an_llmemb_encoder_json_of_an_earlier_version_still_loads_and_encodes(rat_run, small, tmp_path):
    import shutil

    old = tmp_path / "rat"
    shutil.copytree(rat_run / "rat", old)
    spec_file = old / "refresh_encoder" / "encoder.json"
    spec = json.loads(spec_file.read_text())
    assert spec.pop("precision") == "fp32"
    spec_file.write_text(json.dumps({**spec, "bf16": False}))  # what earlier runs saved
    encoder = load_item_encoder(old, "llmemb")
    encoder.progress = False
    assert encoder.backend().precision == "fp32"
    assert cosines(encoder.encode(small.items), Bundle.load(rat_run / "rat").item_vectors).min() >= 0.999
