"""The seqrec trainer end to end on a tiny synthetic dataset: run directory, resume, table init, Python API."""

import json

import numpy as np
import pytest
import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec.results import read_results
from semrec_worker.training import SeqRecConfig, train_seqrec
from semrec_worker.training.data import WindowBatches, training_windows
from typer.testing import CliRunner

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
SMALL = dict(data=DATA, dim=16, max_len=10, batch_size=64, lr=5e-3, threads=1, dropout=0.0)


def test_windows_cover_every_target_once():
    seqs = [np.arange(1, 24), np.array([5, 6]), np.array([7])]
    windows = training_windows(seqs, max_len=5)
    assert all(2 <= len(w) <= 6 for w in windows)
    targets = sorted(int(t) for w in windows for t in w[1:])
    assert targets == sorted(list(range(2, 24)) + [6])
    batches = WindowBatches(seqs, 5, batch_size=2, seed=0)
    rows = [b.windows for b in batches.epoch(1)]
    assert sum(len(r) for r in rows) == len(windows)
    assert sum(int((r[:, :-1] != 0).sum()) for r in rows) == batches.n_targets == len(targets)
    # the same epoch seed gives the same batches; data-parallel shards partition them
    again = [b.windows for b in batches.epoch(1)]
    assert all(torch.equal(a, b) for a, b in zip(rows, again, strict=True))
    shards = [[b.windows for b in batches.epoch(1, rank, 2)] for rank in (0, 1)]
    assert sum(len(s) for part in shards for s in part) == len(windows)


def test_run_directory_and_results(tmp_path, tiny_synthetic):
    out = tmp_path / "run"
    result = train_seqrec(SeqRecConfig(out=out, backbone="sasrec", loss="full_ce", epochs=3, **SMALL),
                          dataset=tiny_synthetic)  # fmt: skip
    for name in ("config.json", "metrics.json", "model.pt", "checkpoint.pt", "item_table.npz", "results.json",
                 "popularity.npy"):  # fmt: skip
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["epochs"][-1]["loss"] < metrics["epochs"][0]["loss"]
    assert set(metrics["epochs"][0]["valid"]) >= {"ndcg@10", "recall@10", "mrr"}
    assert metrics["model"]["similarity"] == "dot" and metrics["seconds_per_epoch"] > 0
    parts = json.loads((out / "config.json").read_text())["parts"]  # what was plugged in, beside the settings
    assert parts == {"backbone": "sasrec", "item_layer": "embedding", "extra_loss": None, "init_method": "random"}
    doc = read_results(out / "results.json")
    assert [r.method for r in doc.runs] == ["random"] and doc.runs[0].protocol == "full"
    assert doc.runs[0].backbone == "sasrec" and doc.runs[0].loss == "full_ce" and doc.runs[0].seed == 0
    table = ItemTable.load(out)
    assert table.ids == tiny_synthetic.item_ids and table.dim == 16
    assert np.allclose(table.vectors, result.model.item_embedding.weight.detach().numpy()[1:])
    assert result.best_epoch == max(range(1, 4), key=lambda e: metrics["epochs"][e - 1]["valid"]["ndcg@10"])
    # the reported numbers, recomputed from the saved model with numpy (not the trainer's bookkeeping):
    # the best epoch's validation NDCG@10 and the test metrics in results.json
    valid = numpy_metrics(out, tiny_synthetic, "valid")
    assert metrics["epochs"][result.best_epoch - 1]["valid"]["ndcg@10"] == pytest.approx(valid["ndcg@10"], abs=2e-3)
    test = numpy_metrics(out, tiny_synthetic, "test")
    for name in ("ndcg@10", "recall@10", "mrr"):
        assert doc.runs[0].metrics[name] == pytest.approx(test[name], abs=2e-3), name
    assert test["recall@10"] > 0.05  # trained: better than a constant model's 0
    with pytest.raises(UserError, match="--resume"):
        train_seqrec(SeqRecConfig(out=out, epochs=3, **SMALL), dataset=tiny_synthetic)


def numpy_metrics(run_dir, dataset, split: str) -> dict[str, float]:
    """NDCG@10 / Recall@10 / MRR of a saved run on `split`: torch forward, numpy scores and pessimistic ranks."""
    from semrec_worker.backbones import left_pad
    from semrec_worker.export import load_run_encoder

    encoder, config, _, metrics = load_run_encoder(run_dir)
    histories, targets = dataset.split(split)
    with torch.no_grad():
        hidden = encoder.eval()(left_pad(histories, config.max_len)).numpy().astype(np.float64)
        items = encoder.item_embedding.weight.detach().numpy().astype(np.float64)[1:]
    if metrics["model"]["similarity"] == "cosine":
        hidden = hidden / np.linalg.norm(hidden, axis=1, keepdims=True)
        items = items / np.linalg.norm(items, axis=1, keepdims=True)
    scores_ = hidden @ items.T
    target = scores_[np.arange(len(targets)), targets - 1]
    ranks = (scores_ >= target[:, None]).sum(1) - 1
    return {"ndcg@10": float(np.where(ranks < 10, 1 / np.log2(ranks + 2), 0).mean()),
            "recall@10": float((ranks < 10).mean()), "mrr": float((1 / (ranks + 1)).mean())}  # fmt: skip


def test_resume_continues_from_checkpoint(tmp_path, tiny_synthetic):
    out = tmp_path / "run"
    first = train_seqrec(SeqRecConfig(out=out, backbone="gru4rec", epochs=2, **SMALL), dataset=tiny_synthetic)
    resumed = train_seqrec(SeqRecConfig(out=out, backbone="gru4rec", epochs=3, resume=True, **SMALL),
                           dataset=tiny_synthetic)  # fmt: skip
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == first.history


def test_table_init_names_the_method_and_custom_modules_plug_in(tmp_path, tiny_synthetic):
    rng = np.random.default_rng(0)
    table = ItemTable(tiny_synthetic.item_ids, rng.normal(size=(tiny_synthetic.n_items, 40)), {"method": "fake-lm"})
    path = table.save(tmp_path / "table.npz")
    result = train_seqrec(
        SeqRecConfig(out=tmp_path / "a", init=str(path), freeze_items=True, epochs=1, **SMALL), dataset=tiny_synthetic
    )
    assert result.runs[0].method == "fake-lm" and result.init["reduction"] == "pca 40->16"
    assert result.runs[0].loss == "said_cosine"
    frozen = result.model.item_embedding.weight.detach().clone()
    assert not result.model.item_embedding.weight.requires_grad

    class Adapter(torch.nn.Module):
        method = "adapter"

        def __init__(self):
            super().__init__()
            self.register_buffer("frozen", torch.from_numpy(np.vstack([np.zeros((1, 16)), frozen[1:].numpy()])).float())
            self.net = torch.nn.Linear(16, 16)

        @property
        def weight(self):
            return self.net(self.frozen)

        def forward(self, ids):
            return self.net(self.frozen[ids])

    calls = []

    def alignment(model, items, hidden, targets):
        calls.append(items.shape)
        return 0.01 * items[1:].pow(2).mean()

    adapter = Adapter()
    before = adapter.net.weight.detach().clone()
    result = train_seqrec(
        SeqRecConfig(out=tmp_path / "b", backbone="bert4rec", loss="bce", epochs=1, **SMALL),
        dataset=tiny_synthetic, item_embedding=adapter, extra_loss=alignment,
    )  # fmt: skip
    assert calls and calls[0] == (tiny_synthetic.n_items + 1, 16)
    assert not torch.equal(before, adapter.net.weight) and result.runs[0].method == "adapter"


def test_cli_trains_and_reports_bad_input(tmp_path):
    from semrec.cli import build_app

    runner = CliRunner()
    app = build_app()
    bad = runner.invoke(app, ["train", "seqrec", "--data", DATA, "--init", str(tmp_path / "missing.npz"),
                              "--out", str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code == 2 and "no such file" in bad.output
    bad_loss = runner.invoke(app, ["train", "seqrec", "--data", DATA, "--loss", "hinge", "--out", str(tmp_path / "y")])
    assert bad_loss.exit_code == 2
    ok = runner.invoke(app, ["train", "seqrec", "--data", DATA, "--backbone", "gru4rec", "--loss", "sampled_softmax",
                             "--n-negatives", "20", "--epochs", "1", "--dim", "8", "--max-len", "8", "--threads", "1",
                             "--out", str(tmp_path / "cli"), "--results", str(tmp_path / "all.json")])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert read_results(tmp_path / "all.json").runs[0].loss == "sampled_softmax"


@pytest.mark.parametrize(
    ("metadata", "warned"),
    [
        ({"dataset": "NAME", "dataset_fingerprint": "FP"}, False),  # an LM table: name + fingerprint
        ({"dataset": "FP"}, False),  # a trained table of an older version: the fingerprint only
        ({"dataset": "NAME", "dataset_fingerprint": "0123456789abcdef"}, True),
    ],
)
def test_dataset_mismatch_warning_compares_fingerprints(tmp_path, tiny_synthetic, capsys, metadata, warned):
    filled = {k: v.replace("NAME", tiny_synthetic.name).replace("FP", tiny_synthetic.fingerprint)
              for k, v in metadata.items()}  # fmt: skip
    rng = np.random.default_rng(0)
    table = ItemTable(tiny_synthetic.item_ids, rng.normal(size=(tiny_synthetic.n_items, 16)), filled)
    train_seqrec(SeqRecConfig(out=tmp_path / "a", init=str(table.save(tmp_path / "t.npz")), epochs=1, **SMALL),
                 dataset=tiny_synthetic)  # fmt: skip
    assert ("table was built for dataset" in capsys.readouterr().err) is warned
