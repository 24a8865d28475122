"""The Python API and its CLI twins: DataFrame -> Dataset -> train -> Recommender.from_run -> recommend, and
`semrec recommend` / `semrec eval run`, all without Redis. Rankings are checked against the trained model's
own scores computed here with torch, not through the API."""

import copy
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from semrec.cli import build_app
from semrec.errors import UserError
from semrec_worker.api import Dataset, Recommender, train
from semrec_worker.api import recommender as recommender_module
from semrec_worker.backbones import left_pad
from semrec_worker.training import SeqRecConfig, train_seqrec
from typer.testing import CliRunner

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
TINY = {"dim": 16, "max_len": 12, "epochs": 1, "threads": 1, "batch_size": 64, "lr": 5e-3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_synthetic_shared):
    """(run dir, in-memory trained encoder, similarity) for a cosine (said_cosine) and a dot (full_ce) run."""
    base = tmp_path_factory.mktemp("api-runs")
    runs = {}
    for backbone, loss, similarity in (("sasrec", "said_cosine", "cosine"), ("gru4rec", "full_ce", "dot")):
        config = SeqRecConfig(data=DATA, out=base / backbone, backbone=backbone, loss=loss, **TINY)
        result = train_seqrec(config, dataset=copy.deepcopy(tiny_synthetic_shared))
        runs[backbone] = (base / backbone, result.model.eval(), similarity)
    return runs


def torch_scores(model, history_indices: list[int], similarity: str) -> np.ndarray:
    """The trained model's score of every item (index 1..n) for one history, straight from torch."""
    with torch.no_grad():
        hidden = model(left_pad([history_indices], model.max_len))
        items = model.item_embedding.weight[1:]
        if similarity == "cosine":
            hidden, items = torch.nn.functional.normalize(hidden, dim=-1), torch.nn.functional.normalize(items, dim=-1)
        return (hidden @ items.T)[0].numpy()


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_recommend_by_user_is_the_models_own_top_k(trained, tiny_synthetic, backbone):
    run, model, similarity = trained[backbone]
    recommender = Recommender.from_run(run)
    users = tiny_synthetic.user_ids[:5]
    frame = recommender.recommend(users, k=10)
    assert list(frame.columns) == ["user", "rank", "item_id", "score", "title"]
    assert len(frame) == 50 and frame["title"].notna().all()
    by_user = dict(zip(tiny_synthetic.user_ids, tiny_synthetic.sequences, strict=True))
    for user in users:
        history = by_user[user].tolist()
        expected = torch_scores(model, history, similarity)
        expected[np.asarray(history) - 1] = -np.inf  # seen items are excluded by default
        top = np.argsort(-expected, kind="stable")[:10]
        got = frame[frame["user"] == user]
        assert got["item_id"].tolist() == [tiny_synthetic.item_ids[c] for c in top]
        assert got["rank"].tolist() == list(range(1, 11))
        assert np.allclose(got["score"].to_numpy(), expected[top], atol=1e-5)
        assert not set(got["item_id"]) & {tiny_synthetic.item_ids[i - 1] for i in history}


def test_recommend_by_history_unknown_ids_empty_history_and_seen_items(trained, tiny_synthetic, monkeypatch):
    run, model, similarity = trained["sasrec"]
    recommender = Recommender.from_run(run)
    ids = tiny_synthetic.item_ids
    history = [ids[4], ids[9], ids[4], ids[17]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = recommender.recommend(histories=[history + ["no-such-item"], []], k=5, exclude_seen=False)
    assert any("1 history item(s) are not in the model" in str(w.message) for w in caught)
    expected = torch_scores(model, [5, 10, 5, 18], similarity)
    assert frame[frame["user"] == 0]["item_id"].tolist() == [ids[c] for c in np.argsort(-expected, kind="stable")[:5]]
    # no known item: the most popular training items, like the ranker's fallback
    popularity = tiny_synthetic.item_counts("train")[1:]
    assert frame[frame["user"] == 1]["item_id"].tolist() == [ids[c] for c in np.argsort(-popularity, kind="stable")[:5]]
    # lists as elements are histories, also positionally; scoring in small batches changes nothing
    positional = recommender.recommend([history + ["no-such-item"], []], k=5, exclude_seen=False)
    pd.testing.assert_frame_equal(positional, frame)
    monkeypatch.setattr(recommender_module, "SCORE_BATCH", 1)
    pd.testing.assert_frame_equal(recommender.recommend([history + ["no-such-item"], []], k=5, exclude_seen=False), frame)
    with pytest.raises(UserError, match="either users"):
        recommender.recommend()
    with pytest.raises(UserError, match="not in the dataset"):
        recommender.recommend(["nobody"])
    with pytest.raises(UserError, match="list of item-id lists"):
        recommender.recommend(histories=["a", "b"])


def test_similar_items_are_the_nearest_trained_vectors(trained, tiny_synthetic):
    run, model, _ = trained["gru4rec"]
    vectors = model.item_embedding.weight[1:].detach().numpy()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    frame = Recommender.from_run(run).similar_items([tiny_synthetic.item_ids[3]], k=6)
    cosine = unit @ unit[3]
    cosine[3] = -np.inf
    top = np.argsort(-cosine, kind="stable")[:6]
    assert frame["item_id"].tolist() == [tiny_synthetic.item_ids[c] for c in top]
    assert np.allclose(frame["score"].to_numpy(), cosine[top], atol=1e-5)
    assert (frame["query_item_id"] == tiny_synthetic.item_ids[3]).all()


def shop_frames(n_users: int = 120, n_items: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small shop: each user walks the catalogue in steps of 3, with ISO-8601 timestamps, rows shuffled."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(0, n_items))
        for t in range(10):
            rows.append((f"user{u}", f"sku{(start + 3 * t) % n_items}", f"2025-03-{1 + t:02d}T08:{u % 60:02d}:00Z"))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).sample(frac=1.0, random_state=0)
    items = pd.DataFrame({"item_id": [f"sku{i}" for i in range(n_items)], "title": [f"Item {i}" for i in range(n_items)],
                          "brand": ["Acme"] * n_items, "categories": ["Tools > Hand tools"] * n_items})  # fmt: skip
    return interactions, items


def test_dataset_from_frame_orders_by_timestamp_and_keeps_attributes():
    interactions, items = shop_frames()
    dataset = Dataset.from_frame(interactions, items, name="shop")
    assert dataset.n_users == 120 and dataset.n_items == 60 and dataset.name == "shop"
    history = dataset.histories()["user7"]
    ordered = interactions[interactions.user_id == "user7"].sort_values("timestamp")["item_id"].tolist()
    assert history == ordered  # chronological although the frame is shuffled
    item = dataset.sequences.items[dataset.sequences.item_ids.index("sku5")]
    assert (item.title, item.brand, item.categories) == ("Item 5", "Acme", ["Tools", "Hand tools"])
    # datetimes and numbers order the same way as the ISO strings
    as_datetime = interactions.assign(timestamp=pd.to_datetime(interactions.timestamp))
    assert Dataset.from_frame(as_datetime, items).sequences.fingerprint == dataset.sequences.fingerprint
    seconds = as_datetime.assign(timestamp=as_datetime.timestamp.astype("int64") // 10**9)
    assert Dataset.from_frame(seconds, items).sequences.fingerprint == dataset.sequences.fingerprint


def test_dataset_from_frame_bad_input_and_duplicate_items():
    interactions, items = shop_frames()
    with pytest.raises(UserError, match="missing column"):
        Dataset.from_frame(interactions.drop(columns="item_id"), items)
    broken = interactions.copy()
    broken.iloc[5, broken.columns.get_loc("timestamp")] = "last tuesday"
    with pytest.raises(UserError, match="'last tuesday'.*neither a number nor an ISO-8601"):
        Dataset.from_frame(broken, items)
    with pytest.raises(UserError, match="not in the items file"):
        Dataset.from_frame(interactions, items[items.item_id != "sku1"])
    doubled = pd.concat([items, items.iloc[:3].assign(title="renamed")])
    with pytest.warns(UserWarning, match="3 item id\\(s\\) appear more than once"):
        dataset = Dataset.from_frame(interactions, doubled)
    assert dataset.sequences.items[dataset.sequences.item_ids.index("sku0")].title == "renamed"  # last row wins


def test_train_from_frame_saves_a_run_that_reloads_from_anywhere(tmp_path, monkeypatch):
    interactions, items = shop_frames()
    dataset = Dataset.from_frame(interactions, items, name="shop")
    model = train(dataset, tmp_path / "run", backbone="gru4rec", **TINY)
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["dataset"]
    assert config["data"] == str((tmp_path / "run" / "data" / "shop").resolve())
    assert config["fingerprint"] == dataset.sequences.fingerprint
    assert Dataset.from_path(config["data"]).sequences.fingerprint == dataset.sequences.fingerprint
    expected = model.recommend(["user3", "user50"], k=5)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    reloaded = Recommender.from_run(tmp_path / "run")  # histories and titles from the run's own data folder
    pd.testing.assert_frame_equal(reloaded.recommend(["user3", "user50"], k=5), expected)
    assert reloaded.recommend(["user3"], k=1)["title"].iloc[0].startswith("Item ")
    # the saved config re-runs from this other folder with the CLI and reproduces the test metrics
    result = CliRunner().invoke(build_app(), ["train", "seqrec", "--config", str(tmp_path / "run" / "config.json"),
                                              "--out", "rerun"])  # fmt: skip
    assert result.exit_code == 0, result.output
    first, again = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "run", elsewhere / "rerun"))
    assert again["dataset"]["fingerprint"] == first["dataset"]["fingerprint"]
    assert again["test"][0]["metrics"] == pytest.approx(first["test"][0]["metrics"], abs=1e-9)
    with pytest.raises(UserError, match="already holds a run"):
        train(dataset, tmp_path / "run", **TINY)
    with pytest.raises(UserError, match="kcore"):
        train(dataset, tmp_path / "other", kcore=2)


def test_semrec_recommend_prints_the_apis_answer(trained, tiny_synthetic):
    run = trained["sasrec"][0]
    expected = Recommender.from_run(run).recommend([tiny_synthetic.user_ids[2]], k=4)
    runner = CliRunner()
    result = runner.invoke(build_app(), ["recommend", "--run", str(run), "--user", tiny_synthetic.user_ids[2], "--k", "4"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "rank\titem_id\tscore\ttitle"
    assert [line.split("\t")[1] for line in lines[1:]] == expected["item_id"].tolist()
    assert [line.split("\t")[3] for line in lines[1:]] == expected["title"].tolist()
    result_user_stdout = result.stdout
    history = tiny_synthetic.item_ids[:3]
    result = runner.invoke(build_app(), ["recommend", "--run", str(run), "--history", ",".join(history), "--output-format", "json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["item_id"] for r in records] == Recommender.from_run(run).recommend(histories=[history])["item_id"].tolist()
    other = runner.invoke(build_app(), ["recommend", "--run", str(run), "--user", tiny_synthetic.user_ids[2], "--k", "4",
                                        "--data", DATA])  # fmt: skip
    assert other.exit_code == 0 and other.stdout == result_user_stdout
    for bad in ([], ["--user", "nobody"], ["--user", "x", "--history", "a"]):
        result = runner.invoke(build_app(), ["recommend", "--run", str(run), *bad])
        assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_semrec_eval_run_reproduces_the_trainers_test_metrics(trained, tmp_path):
    run = trained["gru4rec"][0]
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(build_app(), ["eval", "run", "--run", str(run), "--protocols", "full", "--results", str(out)])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(out.read_text())["runs"]
    trained_metrics = json.loads((run / "metrics.json").read_text())["test"][0]["metrics"]
    assert len(evaluated) == 1 and evaluated[0]["protocol"] == "full" and evaluated[0]["backbone"] == "gru4rec"
    for name, value in trained_metrics.items():
        assert evaluated[0]["metrics"][name] == pytest.approx(value, abs=1e-6)
    again = CliRunner().invoke(build_app(), ["eval", "run", "--run", str(run), "--protocols", "full", "--exclude-history",
                                             "--results", str(out), "--append"])  # fmt: skip
    assert again.exit_code == 0, again.output
    both = json.loads(out.read_text())["runs"]
    assert [r["config"]["exclude_history"] for r in both] == [False, True]
    assert both[0]["metrics"] == evaluated[0]["metrics"] and both[1]["config"]["history_bias"] == "none"


def test_eval_run_on_the_validation_split_reproduces_the_trainers_best_validation_metrics(trained, tmp_path):
    run = trained["sasrec"][0]
    result = CliRunner().invoke(build_app(), ["eval", "run", "--run", str(run), "--protocols", "full", "--split", "valid",
                                              "--results", str(tmp_path / "valid.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    evaluated = json.loads((tmp_path / "valid.json").read_text())["runs"]
    trained_metrics = json.loads((run / "metrics.json").read_text())
    best = trained_metrics["epochs"][trained_metrics["best_epoch"] - 1]["valid"]
    assert evaluated[0]["config"]["split"] == "valid"
    for name, value in best.items():
        assert evaluated[0]["metrics"][name] == pytest.approx(value, abs=1e-6)
    test = trained_metrics["test"][0]["metrics"]
    assert evaluated[0]["metrics"] != pytest.approx(test)  # another split's cases


def test_eval_run_on_another_dataset_ranks_unknown_targets_last(trained, tiny_synthetic, tmp_path):
    """A dataset with an item the model never saw: histories are matched by id, that item's cases rank last."""
    run = trained["gru4rec"][0]
    histories = Dataset.from_path(DATA).histories()
    rows = [(u, item, t) for u, items in list(histories.items())[:60] for t, item in enumerate(items)]
    rows += [(u, "brand-new", 100) for u in list(histories)[:60:2]]  # the last item of every other user
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    Dataset.from_frame(frame, kcore=0).save(tmp_path / "newdata")
    result = CliRunner().invoke(build_app(), ["eval", "run", "--run", str(run), "--data", str(tmp_path / "newdata"), "--kcore", "0",
                                              "--protocols", "full", "--out", str(tmp_path / "e.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 of the dataset's" in result.output
    metrics = json.loads((tmp_path / "e.json").read_text())["runs"][0]
    assert metrics["config"]["unknown_items"] == 1
    # expected: the model's torch scores over the new dataset's items (the unknown one scores -inf)
    _, model, similarity = trained["gru4rec"]
    new = Dataset.from_path(tmp_path / "newdata", kcore=0).sequences
    model_index = {item_id: i + 1 for i, item_id in enumerate(tiny_synthetic.item_ids)}
    hits = []
    for sequence in new.sequences:
        ids = [new.item_ids[i - 1] for i in sequence.tolist()]
        scores = torch_scores(model, [model_index[i] for i in ids[:-1] if i in model_index], similarity)
        over_new = np.array([scores[model_index[i] - 1] if i in model_index else -np.inf for i in new.item_ids])
        target = over_new[new.item_ids.index(ids[-1])]
        rank = int((over_new >= target).sum()) - 1  # pessimistic ties, the target itself not counted
        hits.append(rank < 20)
    assert sum(not h for h in hits) >= 30  # the 30 unknown targets are never hits
    assert metrics["metrics"]["recall@20"] == pytest.approx(np.mean(hits), abs=1e-9)
    result = CliRunner().invoke(build_app(), ["eval", "run", "--run", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a seqrec run" in result.output


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_offline_recommendations_are_what_the_ranker_serves(trained, tiny_synthetic, backbone, tmp_path):
    """The exported bundle in the ranker's engine (ONNX Runtime + cosine top-k) answers with the same items."""
    import shutil

    from semrec.bundle import Bundle
    from semrec_ranker.engine import Engine
    from semrec_worker.export import export_run

    run = tmp_path / "run"
    shutil.copytree(trained[backbone][0], run)
    export_run(run)
    engine = Engine("1", Bundle.load(run), ann_threshold=10**9)
    recommender = Recommender.from_run(run)
    for history in (tiny_synthetic.item_ids[10:14], tiny_synthetic.item_ids[50:51], tiny_synthetic.item_ids[::7]):
        served = engine.recommend(history, 10)
        offline = recommender.recommend(histories=[history], k=10)
        assert [engine.item_ids[r] for r in served.rows] == offline["item_id"].tolist()


def test_train_from_a_folder_stores_its_absolute_path_without_copying(tmp_path, monkeypatch):
    interactions, items = shop_frames()
    monkeypatch.chdir(tmp_path)
    Dataset.from_frame(interactions, items, name="shop", kcore=0).save("shop")
    train(Dataset.from_path("shop"), "run", **TINY)
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["dataset"]
    assert config["data"] == str((tmp_path / "shop").resolve()) and not (tmp_path / "run" / "data").exists()
    # a DataFrame dataset named like an existing folder is still written into the run, never confused with it
    train(Dataset.from_frame(interactions, items, name="shop"), "run2", **TINY)
    config = json.loads((tmp_path / "run2" / "config.json").read_text())["config"]["dataset"]
    assert config["data"] == str((tmp_path / "run2" / "data" / "shop").resolve())
