"""The validation metric is checked with the flags, before any data loads; HR@k is Recall@k."""

import numpy as np
import pytest
from pydantic import ValidationError
from semrec.cli import build_app
from semrec_worker.core.names import METRIC_NAMES, metric_name
from semrec_worker.evaluation.metrics import metrics_from_ranks
from semrec_worker.training import SeqRecConfig
from typer.testing import CliRunner


def test_every_metric_name_is_one_the_evaluation_reports():
    assert list(metrics_from_ranks(np.array([0, 3, 12, 40]))) == list(METRIC_NAMES)


@pytest.mark.parametrize(("given", "canonical"), [("HR@10", "recall@10"), ("hr@20", "recall@20"),
                                                  ("NDCG@10", "ndcg@10"), ("mrr", "mrr")])  # fmt: skip
def test_aliases_and_case_map_to_the_reported_name(given, canonical, tmp_path):
    assert metric_name(given) == canonical
    assert SeqRecConfig(data="synthetic", out=tmp_path, valid_metric=given).valid_metric == canonical


def test_an_unknown_metric_is_refused_by_the_config():
    with pytest.raises(ValidationError, match="unknown metric 'ndcg@5'"):
        SeqRecConfig(data="synthetic", out="runs/x", valid_metric="ndcg@5")


def test_the_cli_refuses_an_unknown_metric_before_reading_the_data(tmp_path):
    missing = tmp_path / "no-such-dataset"
    result = CliRunner().invoke(build_app(), ["train", "seqrec", "--data", str(missing), "--out", str(tmp_path / "run"),
                                              "--valid-metric", "precision@10"])  # fmt: skip
    assert result.exit_code == 2
    assert "unknown metric 'precision@10'" in result.output and "recall@10" in result.output
    assert "no-such-dataset" not in result.output  # the data was never opened
    assert not (tmp_path / "run").exists()
