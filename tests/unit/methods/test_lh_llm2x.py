"""LH and LLM2X item tables: one row per dataset item in order, the widths asked for, honest metadata,
and the `semrec train lh|llm2x` run directories."""

from __future__ import annotations

import numpy as np
import pytest
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec_worker.core.reduction import pca_reduce
from semrec_worker.lm.backends import text_encoder
from semrec_worker.methods.lh import LastHiddenState
from semrec_worker.methods.llm2x import LLM2X
from semrec_worker.methods.llm_settings import LHSettings, LLM2XSettings
from typer.testing import CliRunner

SMALL = "synthetic:users=60,items=30,avg_len=6,seed=3"



def test_pca_keeps_width_and_variance(rng):
    low_rank = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 20))
    reduced, kept = pca_reduce(low_rank, 3)
    assert reduced.shape == (50, 3) and kept == pytest.approx(1.0, abs=1e-6)
    padded, _ = pca_reduce(low_rank[:4], 8)  # more components than 4 rows support: zero columns
    assert padded.shape == (4, 8) and np.allclose(padded[:, 4:], 0)
    with pytest.raises(UserError):
        pca_reduce(low_rank[:1], 2)


def test_lh_table_rows_follow_the_dataset(small):
    table = LastHiddenState(LHSettings(llm="tiny", precision="fp32")).fit(small)
    assert table.ids == small.item_ids and table.dim == 64
    assert table.metadata["method"] == "lh" and table.metadata["pooling"] == "last"
    assert table.metadata["dataset_fingerprint"] == small.fingerprint
    assert np.linalg.matrix_rank(table.vectors) > 5  # distinct captions give distinct vectors
    reduced = LastHiddenState(LHSettings(llm="tiny", precision="fp32", dim=8)).fit(small)
    assert reduced.dim == 8
    # the variance the 8 kept components explain, by numpy: the top-8 squared singular values of the centred table
    singular = np.linalg.svd(table.vectors - table.vectors.mean(0), compute_uv=False)
    kept = (singular[:8] ** 2).sum() / (singular**2).sum()
    assert reduced.metadata["pca_variance_kept"] == pytest.approx(kept, abs=1e-3)


def test_llm2x_reduces_text_embeddings_to_the_model_width(small):
    table = LLM2X(LLM2XSettings(dim=16), encoder=text_encoder("tiny", progress=False)).fit(small)
    assert table.ids == small.item_ids and table.dim == 16
    assert table.metadata["text_dim"] == 32 and table.metadata["method"] == "llm2x"
    assert np.allclose(table.vectors.mean(0), 0, atol=1e-4)  # PCA scores are centred


@pytest.mark.slow
def test_train_commands_write_run_directories(tmp_path):
    from semrec.cli import build_app

    runner = CliRunner()
    for method, extra in (("lh", ["--llm", "tiny", "--precision", "fp32"]), ("llm2x", ["--text-encoder", "tiny", "--dim", "8"])):
        out = tmp_path / method
        result = runner.invoke(build_app(), ["train", method, "--data", SMALL, "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        table = ItemTable.load(out)
        assert table.metadata["method"] == method and (out / "config.json").exists()
    bad = runner.invoke(build_app(), ["train", "llm2x", "--data", SMALL, "--text-encoder", str(tmp_path)])
    assert bad.exit_code == 2
