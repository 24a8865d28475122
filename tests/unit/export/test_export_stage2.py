"""A stage-2 run (RAT, TSLRec) rebuilds from its config.json alone and exports the model it trained: the ONNX
bundle scores like the trained torch model (item layer included: the RAT adapter, TSLRec's gated fusion)."""

import copy
import json

import numpy as np
import pytest
import torch
from semrec.bundle import Bundle
from semrec_worker.export import export_run
from semrec_worker.export.onnx import BundleRecommender
from semrec_worker.lm import load_language_model
from semrec_worker.methods.llmemb.job import train_llmemb_rat
from semrec_worker.methods.llmemb.model import LLMEmbAdapter, LLMEmbSCFT
from semrec_worker.methods.llmemb.settings import SCFTSettings, TrainRATConfig
from semrec_worker.methods.rebuild import model_from_config
from semrec_worker.methods.tslrec.model import GatedFusionEmbedding
from semrec_worker.methods.tslrec.settings import TSLRecJobConfig
from semrec_worker.methods.tslrec.train import train_tslrec
from semrec_worker.training import SeqRecConfig, SeqRecRecommender, train_seqrec

torch.set_num_threads(1)
SMALL = "synthetic:users=60,items=30,avg_len=6,seed=3"  # = the `small` fixture
SEQREC = dict(data=SMALL, dim=8, max_len=8, batch_size=32, lr=5e-3, threads=1, dropout=0.0, epochs=1)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, small_shared):
    root = tmp_path_factory.mktemp("stage2")
    train_seqrec(SeqRecConfig(out=root / "sasrec", backbone="sasrec", **SEQREC), dataset=copy.deepcopy(small_shared))
    return root


def assert_bundle_scores_like_the_model(run, trained, dataset):
    histories, _ = dataset.split("test")
    rebuilt = model_from_config(run)
    want = SeqRecRecommender(trained, "cosine").score(histories)
    assert torch.equal(SeqRecRecommender(rebuilt, "cosine").score(histories), want)  # the same model, exactly
    export_run(run)
    got = BundleRecommender(Bundle.load(run)).score(histories)
    np.testing.assert_allclose(got[:, 1:].numpy(), want[:, 1:].numpy(), atol=1e-4)
    assert np.array_equal(np.argsort(-got[:, 1:].numpy(), axis=1)[:, :5], np.argsort(-want[:, 1:].numpy(), axis=1)[:, :5])
    return rebuilt


def test_rat_run_rebuilds_and_exports_its_adapter(pretrained, small_shared):
    small = copy.deepcopy(small_shared)
    root = pretrained
    (root / "scft").mkdir()
    settings = SCFTSettings(llm="tiny", batch_size=6, max_steps=2, precision="fp32", max_prompt_tokens=160, dim=24,
                            probe_items=4, domain="lab", embed_batch_size=8)  # fmt: skip
    table = LLMEmbSCFT(settings, run_dir=root / "scft", lm=load_language_model("tiny"), progress=False).fit(small)
    table.save(root / "scft" / "item_table.npz")
    # said_cosine (not RAT's default BCE): the comparison below scores by cosine, as the pretrained SASRec trained
    config = TrainRATConfig(out=root / "rat", backbone="sasrec", scft=str(root / "scft"), loss="said_cosine",
                            collaborative=str(root / "sasrec"), d_m=16, **SEQREC)  # fmt: skip
    result = train_llmemb_rat(config)
    saved = json.loads((root / "rat" / "config.json").read_text())
    assert saved["kind"] == "TrainRATConfig" and set(saved["config"]) == {"seqrec", "rat"}
    assert saved["parts"]["item_layer"] == "llmemb-adapter" and saved["parts"]["extra_loss"] == "llmemb-alignment"
    rebuilt = assert_bundle_scores_like_the_model(root / "rat", result.model, small)
    assert isinstance(rebuilt.item_embedding, LLMEmbAdapter)


def test_tslrec_run_rebuilds_and_exports_its_gated_fusion(pretrained, small_shared):
    small = copy.deepcopy(small_shared)
    root = pretrained
    config = TSLRecJobConfig(out=root / "tslrec", backbone="sasrec", pretrained=root / "sasrec", llm="tiny",
                             n_groups=3, sft_max_steps=2, sft_batch_size=16, precision="fp32", instruction="items:",
                             **SEQREC)  # fmt: skip
    result = train_tslrec(config)
    saved = json.loads((root / "tslrec" / "config.json").read_text())
    assert saved["kind"] == "TSLRecJobConfig" and saved["parts"]["item_layer"] == "tslrec-gated-fusion"
    assert TSLRecJobConfig.load(root / "tslrec", out=root / "again") == config.model_copy(update={
        "seqrec": config.seqrec.model_copy(update={"out": root / "again", "dataset": config.seqrec.dataset.model_copy(
            update={"fingerprint": small.fingerprint})})})  # fmt: skip
    rebuilt = assert_bundle_scores_like_the_model(root / "tslrec", result.model, small)
    assert isinstance(rebuilt.item_embedding, GatedFusionEmbedding)


def test_model_from_a_loaded_config_and_from_a_run_of_an_earlier_version(pretrained, small_shared):
    """A config object rebuilds too; a run saved before configs were nested (flat config.json, `parts` naming
    classes) rebuilds the same model."""
    run = pretrained / "sasrec"
    histories, _ = small_shared.split("test")
    want = SeqRecRecommender(model_from_config(run), "cosine").score(histories)
    from semrec_worker.training.config import load_seqrec_config

    assert torch.equal(SeqRecRecommender(model_from_config(load_seqrec_config(run)), "cosine").score(histories), want)
    saved = json.loads((run / "config.json").read_text())
    old = pretrained / "sasrec-old"
    old.mkdir()
    (old / "model.pt").write_bytes((run / "model.pt").read_bytes())
    flat = {**load_seqrec_config(run).flat(), "resume": False, "results": None}
    del flat["fingerprint"]
    (old / "config.json").write_text(json.dumps({"kind": "SeqRecConfig", "config": flat, "parts": {
        "backbone": "semrec_worker.backbones.sasrec:SASRec", "item_embedding": "torch.nn.modules.sparse:Embedding",
        "extra_loss": None, "init_method": saved["parts"]["init_method"]}}))  # fmt: skip
    assert torch.equal(SeqRecRecommender(model_from_config(old), "cosine").score(histories), want)
