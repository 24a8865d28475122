"""The documented two-step chain works with every default: an LLM2X table feeds `semrec train seqrec`."""

import json

from semrec.cli import build_app
from semrec.item_table import ItemTable
from semrec_worker.methods.llm_settings import LLM2XSettings
from semrec_worker.training.config import ModelSettings
from typer.testing import CliRunner

SMALL = "synthetic:users=120,items=60,avg_len=8,seed=4"


def test_llm2x_default_width_is_the_backbones():
    assert LLM2XSettings.model_fields["dim"].default == ModelSettings.model_fields["dim"].default == 256


def test_llm2x_then_seqrec_with_default_widths(tmp_path):
    runner = CliRunner()
    table_run, seqrec_run = tmp_path / "llm2x", tmp_path / "sasrec"
    result = runner.invoke(build_app(), ["train", "llm2x", "--data", SMALL, "--text-encoder", "tiny", "--out", str(table_run)])
    assert result.exit_code == 0, result.output
    assert ItemTable.load(table_run).dim == 256
    result = runner.invoke(build_app(), ["train", "seqrec", "--data", SMALL, "--init", str(table_run), "--out", str(seqrec_run),
                                         "--epochs", "1", "--threads", "1", "--max-len", "10"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((seqrec_run / "metrics.json").read_text())
    assert metrics["model"]["dim"] == 256 and metrics["init"]["method"] == "llm2x"
    narrow = runner.invoke(build_app(), ["train", "seqrec", "--data", SMALL, "--init", str(table_run), "--dim", "512",
                                         "--out", str(tmp_path / "wide"), "--epochs", "1"])  # fmt: skip
    assert narrow.exit_code == 2 and "PCA cannot widen" in narrow.output and "--dim 256" in narrow.output
