"""The CLI is generated from the job configs: flags, --config files, unknown keys, help."""

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError
from semrec_worker.commands.data import DataStatsConfig


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "semrec.cli", *args], capture_output=True, text=True)


def test_help_lists_every_group():
    out = run_cli("--help").stdout
    for group in ("data", "train", "eval", "export", "bench", "demo"):
        assert group in out


def test_config_round_trip_and_unknown_keys(tmp_path):
    cfg = DataStatsConfig(data="synthetic:users=50,items=20", kcore=2)
    path = cfg.save(tmp_path)
    assert DataStatsConfig.load(path) == cfg
    with pytest.raises(ValidationError, match="kcroe"):
        DataStatsConfig.model_validate({"kcroe": 3})


def test_flags_override_config_file(tmp_path):
    DataStatsConfig(data="synthetic:users=60,items=20,seed=2", kcore=0, output_format="json").save(tmp_path)
    out = run_cli("data", "stats", "--config", str(tmp_path / "config.json"), "--kcore", "3")
    stats = json.loads(out.stdout)
    assert stats["kcore"] == 3 and stats["dataset"] == "synthetic-u60-i20-s2"


def test_invalid_flag_value_exits_2_with_message():
    out = run_cli("data", "stats", "--kcore", "-1")
    assert out.returncode == 2 and "--kcore" in out.stderr and "Traceback" not in out.stderr


def test_unknown_key_in_config_file_exits_2(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"data": "synthetic", "k_core": 5}))
    out = run_cli("data", "stats", "--config", str(tmp_path / "c.json"))
    assert out.returncode == 2 and "k_core" in out.stderr


def test_list_of_choices_is_a_comma_separated_flag(tmp_path):
    out = run_cli("eval", "popularity", "--data", "synthetic:users=300,items=200,seed=1", "--protocols", "full",
                  "--out", str(tmp_path / "r.json"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    assert [r["protocol"] for r in runs] == ["full"]
    bad = run_cli("eval", "popularity", "--protocols", "full,bogus", "--results", str(tmp_path / "x.json"))
    assert bad.returncode == 2 and "--protocols" in bad.stderr
