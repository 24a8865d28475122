"""A run's config.json re-runs from anywhere: nested settings, the data path absolute with the dataset's
fingerprint (checked), no per-invocation fields; config.json files of earlier versions (flat) still load."""

import json
from pathlib import Path

import pytest
from semrec.cli import build_app
from semrec.vocabulary import DeprecatedNameWarning
from semrec_worker.api import Dataset
from semrec_worker.methods.llmemb.settings import TrainRATConfig
from semrec_worker.methods.tslrec.settings import TSLRecJobConfig
from semrec_worker.training.config import SeqRecConfig, load_seqrec_config
from semrec_worker.training.item_layer import ItemLayerSettings
from typer.testing import CliRunner

OLD = Path(__file__).parent / "old_configs"  # config.json files written before configs were nested
FLAGS = ["--dim", "8", "--max-len", "8", "--batch-size", "32", "--lr", "5e-3", "--threads", "1", "--dropout", "0",
         "--epochs", "1", "--loss", "full_ce", "--kcore", "2"]  # fmt: skip


def test_flat_config_files_of_earlier_versions_load_for_every_stage2_kind():
    old = json.loads((OLD / "seqrec.json").read_text())["config"]
    renamed = {"max_seq_len": "history_cap"}  # saved under its old name, renamed on load
    with pytest.warns(DeprecatedNameWarning, match="max_seq_len"):
        seqrec = load_seqrec_config(OLD / "seqrec.json")
    loaded = seqrec.flat()
    assert {renamed.get(k, k): v for k, v in old.items() if k != "out"}.items() <= loaded.items()  # every setting kept
    added = {"fingerprint", "out", "augment", "evaluate_test", "history_bias", "history_bias_lr"}  # added since, defaults as before
    assert set(loaded) - {renamed.get(k, k) for k in old} <= set(ItemLayerSettings.model_fields) | added
    assert loaded["augment"] == "none" and loaded["evaluate_test"] is True
    assert seqrec.model.dim == 16 and seqrec.objective.loss == "full_ce" and seqrec.out == OLD
    rat = TrainRATConfig.load(OLD / "llmemb_rat.json", out="runs/again")
    assert rat.rat.d_m == 16 and rat.rat.alpha == 0.05 and rat.seqrec.model.dim == 32
    assert rat.seqrec.resume is False and rat.seqrec.out == Path("runs/again")  # the old `resume: true` is dropped
    tslrec = TSLRecJobConfig.load(OLD / "tslrec.json", out="runs/again")
    assert tslrec.tslrec.n_groups == 4 and tslrec.stage1_settings().seed == 3 == tslrec.seqrec.seed
    for name in ("seqrec", "llmemb_rat", "tslrec"):
        assert isinstance(load_seqrec_config(OLD / f"{name}.json"), SeqRecConfig)


def test_load_seqrec_config_reads_the_seqrec_part_of_a_nested_stage2_config(tmp_path):
    config = TrainRATConfig(out=tmp_path, scft="s", collaborative="c", dim=12, lr=0.01)
    config.save(tmp_path)
    assert load_seqrec_config(tmp_path) == config.seqrec
    tslrec = TSLRecJobConfig(out=tmp_path / "t", pretrained="p", n_groups=5, seed=4, backbone="gru4rec")
    tslrec.save(tmp_path / "t")
    assert load_seqrec_config(tmp_path / "t") == tslrec.seqrec


def cli(*args):
    return CliRunner().invoke(build_app(), ["train", "seqrec", *map(str, args)])


def test_a_saved_run_reruns_from_another_directory_with_the_same_metrics(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    Dataset.from_path("synthetic:users=60,items=30,avg_len=6,seed=3").save("shop")
    first = cli("--data", "shop", "--out", "run", *FLAGS)
    assert first.exit_code == 0, first.output
    saved = json.loads(Path("run/config.json").read_text())
    assert saved["config"]["dataset"]["data"] == str((tmp_path / "a" / "shop").resolve())
    assert saved["config"]["dataset"]["fingerprint"] == json.loads(Path("run/metrics.json").read_text())["dataset"][
        "fingerprint"]  # fmt: skip
    assert not {"out", "resume", "results"} & set(saved["config"])

    monkeypatch.chdir(tmp_path / "b")
    again = cli("--config", tmp_path / "a" / "run" / "config.json", "--out", "run")
    assert again.exit_code == 0, again.output
    before = json.loads((tmp_path / "a" / "run" / "metrics.json").read_text())
    after = json.loads(Path("run/metrics.json").read_text())
    assert [r["metrics"] for r in after["test"]] == [r["metrics"] for r in before["test"]]
    assert [(e["loss"], e["valid"]) for e in after["epochs"]] == [(e["loss"], e["valid"]) for e in before["epochs"]]

    # the data changed since the run was saved: a clear error before training
    Dataset.from_path("synthetic:users=60,items=30,avg_len=6,seed=4").save(tmp_path / "a" / "shop")
    other = cli("--config", tmp_path / "a" / "run" / "config.json", "--out", "other")
    assert other.exit_code == 2 and "fingerprint" in other.output and not Path("other/model.pt").exists()


def test_a_resumed_run_reruns_into_a_new_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = "synthetic:users=60,items=30,avg_len=6,seed=3"
    assert cli("--data", data, "--out", "run", *FLAGS).exit_code == 0
    resumed = cli("--data", data, "--out", "run", "--resume", *FLAGS[:-6], "--epochs", "2", *FLAGS[-4:])
    assert resumed.exit_code == 0, resumed.output
    assert "resume" not in json.dumps(json.loads(Path("run/config.json").read_text())["config"])
    rerun = cli("--config", "run/config.json", "--out", "fresh")
    assert rerun.exit_code == 0, rerun.output
    assert len(json.loads(Path("fresh/metrics.json").read_text())["epochs"]) == 2


@pytest.mark.parametrize("name", ["seqrec", "llmemb_rat", "tslrec"])
def test_the_cli_takes_an_old_flat_config_file(name, tmp_path):
    """`--config` of an earlier version's file: validated into the nested config (no data is read: --help)."""
    command = {"seqrec": "seqrec", "llmemb_rat": "llmemb-rat", "tslrec": "tslrec"}[name]
    result = CliRunner().invoke(build_app(), ["train", command, "--config", str(OLD / f"{name}.json"),
                                              "--out", str(tmp_path), "--epochs", "0"])  # fmt: skip
    assert result.exit_code == 2 and "--epochs:" in result.output  # it parsed the file, then refused the flag
    assert "ignoring --out" in result.output
