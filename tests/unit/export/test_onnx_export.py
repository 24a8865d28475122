"""ONNX export: parity with torch through ONNX Runtime for every backbone, and the bundle reproduces the
trained model's ranking with a plain cosine top-k."""

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch
from semrec.bundle import Bundle
from semrec.errors import UserError
from semrec_worker.backbones import left_pad
from semrec_worker.export import export_run, load_run_encoder
from semrec_worker.losses import scores
from semrec_worker.training import SeqRecConfig, train_seqrec

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_synthetic_shared):
    """One tiny trained run per (backbone, loss) pair the parity test needs (one epoch each)."""
    tiny_synthetic = copy.deepcopy(tiny_synthetic_shared)
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for backbone, loss in (("gru4rec", "full_ce"), ("sasrec", "said_cosine"), ("bert4rec", "bce")):
        config = SeqRecConfig(data=DATA, out=base / backbone, backbone=backbone, loss=loss, dim=16, max_len=12,
                              epochs=1, threads=1, batch_size=64, lr=5e-3)  # fmt: skip
        train_seqrec(config, dataset=tiny_synthetic)
        out[backbone] = base / backbone
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["gru4rec", "sasrec", "bert4rec"])
def test_onnx_matches_torch_and_bundle_ranks_like_the_model(runs, backbone, tiny_synthetic):
    run = runs[backbone]
    result = export_run(run)
    assert result.bundle_dir == run / "bundle" and result.max_abs_diff <= 1e-4
    assert not list(run.glob("bundle/*.data")), "the encoder must be one self-contained file"
    bundle = Bundle.load(run)
    meta = bundle.metadata
    assert meta["backbone"] == backbone and meta["max_len"] == 12
    assert meta["encoder_graph"] == "final-position"  # checked against the full computation while exporting
    assert result.final_position_diff == meta["final_position_max_abs_diff"] < 1e-5
    assert meta["dataset_fingerprint"] == tiny_synthetic.fingerprint and meta["source_run"]
    assert bundle.item_ids == tiny_synthetic.item_ids
    assert np.allclose(np.linalg.norm(bundle.item_vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(bundle.popularity, tiny_synthetic.item_counts("train")[1:])

    encoder, config, table, metrics = load_run_encoder(run)
    histories, _ = tiny_synthetic.split("test")
    batch = left_pad(histories[:7], config.max_len)
    session = ort.InferenceSession(bundle.encoder_onnx, providers=["CPUExecutionProvider"])
    for rows in (batch[:1], batch):  # dynamic batch axis
        onnx_out = session.run(["embedding"], {"item_ids": rows.numpy()})[0]
        assert onnx_out.shape == (len(rows), bundle.dim)
        assert np.allclose(np.linalg.norm(onnx_out, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        hidden = encoder(batch)
        model_scores = scores(hidden, encoder.item_embedding.weight, metrics["model"]["similarity"])[:, 1:].numpy()
    hidden_norm = torch.nn.functional.normalize(hidden, dim=-1).numpy()
    assert np.abs(onnx_out[:, : hidden_norm.shape[1]] - hidden_norm).max() <= 1e-4
    served = onnx_out @ bundle.item_vectors.T  # the ranker's cosine top-k
    for row in range(len(batch)):
        assert_same_top_k(model_scores[row], np.argsort(-served[row])[:10])
    expected_dim = 16 + (1 if metrics["model"]["similarity"] == "dot" else 0)
    assert bundle.dim == meta["dim"] == expected_dim


def assert_same_top_k(model_scores: np.ndarray, served_rows: np.ndarray, atol: float = 1e-4) -> None:
    """The served rows are a top-k of `model_scores`: equal scores may come in either order (near-ties can
    flip between ONNX Runtime and torch), so the k best scores are compared, not the row order."""
    k = len(served_rows)
    best = np.sort(model_scores)[::-1][:k]
    got = np.sort(model_scores[served_rows])[::-1]
    scale = max(1.0, float(np.abs(best).max()))
    np.testing.assert_allclose(got, best, atol=atol * scale)


def numpy_test_metrics(bundle: Bundle, dataset) -> dict[str, float]:
    """NDCG@10 / Recall@10 / MRR of the bundle on the test split, by numpy alone (pessimistic ties)."""
    histories, targets = dataset.split("test")
    session = ort.InferenceSession(bundle.encoder_onnx, providers=["CPUExecutionProvider"])
    ids = np.zeros((len(histories), bundle.max_len), dtype=np.int64)
    for row, history in enumerate(histories):
        tail = history[-bundle.max_len :]
        ids[row, bundle.max_len - len(tail) :] = tail
    query = session.run(["embedding"], {"item_ids": ids})[0]
    cosine = query @ bundle.item_vectors.T  # column c is item index c + 1
    target_score = cosine[np.arange(len(targets)), targets - 1]
    ranks = (cosine >= target_score[:, None]).sum(1) - 1
    return {"ndcg@10": float(np.where(ranks < 10, 1 / np.log2(ranks + 2), 0).mean()),
            "recall@10": float((ranks < 10).mean()), "mrr": float((1 / (ranks + 1)).mean())}  # fmt: skip


@pytest.mark.slow
def test_bundle_reproduces_the_runs_test_metrics(runs, tiny_synthetic):
    import json

    result = export_run(runs["sasrec"], evaluate_test=True)
    expected = numpy_test_metrics(Bundle.load(runs["sasrec"]), tiny_synthetic)
    assert expected["recall@10"] > 0.05  # a trained model, not a constant one
    torch_metrics = json.loads((runs["sasrec"] / "metrics.json").read_text())["test"][0]["metrics"]
    for name in ("ndcg@10", "recall@10", "mrr"):
        assert abs(result.bundle_test[name] - expected[name]) < 1e-3, name
        assert abs(torch_metrics[name] - expected[name]) < 1e-2, name  # torch vs ONNX: near-ties may flip


def test_export_of_an_unfinished_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a finished seqrec run"):
        export_run(tmp_path)
