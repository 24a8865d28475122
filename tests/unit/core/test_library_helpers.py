"""Where a library does the work: process memory (psutil), bf16 support (torch's CPU queries), PCA checked
against scikit-learn (kept on numpy for its sign convention: methods/reduction.py says why)."""

import os
from pathlib import Path

import numpy as np
import pytest
from semrec.errors import UserError
from semrec.results import machine_info
from semrec_worker.core.reduction import fit_pca
from semrec_worker.core.runtime import native_bf16
from semrec_worker.loadgen.memory import rss_from_pid
from sklearn.decomposition import PCA

LINUX = Path("/proc/self/status").exists()


def test_pca_equals_scikit_learn_up_to_the_sign_of_each_component():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(500, 96)) @ rng.normal(size=(96, 96))
    ours = fit_pca(matrix, 32)
    reference = PCA(32, svd_solver="full").fit(matrix)
    ours_scores, reference_scores = ours.transform(matrix), reference.transform(matrix)
    signs = np.sign((ours_scores * reference_scores).sum(axis=0))
    assert np.allclose(ours_scores, reference_scores * signs, atol=1e-3 * np.abs(ours_scores).max())
    assert ours.variance_kept == pytest.approx(reference.explained_variance_ratio_.sum(), rel=1e-9)


def test_pca_whitening_matches_scikit_learn_and_survives_a_save():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(400, 40)) * np.geomspace(30.0, 0.1, 40)  # variance in a few directions
    white = fit_pca(matrix, 48).whitened(matrix)  # wider than the data: the extra columns stay zero
    scores = white.transform(matrix)
    assert scores.shape == (400, 48) and np.all(scores[:, 40:] == 0)
    np.testing.assert_allclose(scores[:, :40].std(axis=0, ddof=1), 1.0, rtol=1e-4)
    reference = PCA(40, whiten=True, svd_solver="full").fit(matrix).transform(matrix)
    signs = np.sign((scores[:, :40] * reference).sum(axis=0))
    assert np.allclose(scores[:, :40], reference * signs, atol=1e-3)
    again = type(white).from_arrays(white.arrays())
    np.testing.assert_array_equal(again.transform(matrix[:5]), scores[:5])
    plain = fit_pca(matrix, 8)
    assert "pca_stds" not in plain.arrays() and type(plain).from_arrays(plain.arrays()).stds is None


@pytest.mark.skipif(not LINUX, reason="compares with /proc")
def test_rss_of_a_process_matches_the_kernels_count():
    kernel = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))  # fmt: skip
    assert abs(rss_from_pid(os.getpid()) - kernel) < 64 * 2**20
    with pytest.raises(UserError, match="cannot read the memory of process"):
        rss_from_pid(2**22 + 12345)  # above the default pid_max: no such process


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="compares with /proc/cpuinfo")
def test_native_bf16_agrees_with_the_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text()
    assert native_bf16("cpu") == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_machine_memory_is_reported():
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    assert machine_info()["memory_gib"] == pytest.approx(total, abs=0.2)
