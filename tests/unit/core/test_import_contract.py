"""The import contract (pyproject.toml, [tool.importlinter]): every import points down the worker's layers,
shared code imports no service, the ranker never imports the worker, no import cycles. `lint-imports` must
pass; a violation fails the suite with its report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def lint_imports() -> list[str]:
    script = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert script is not None, "lint-imports is not installed (the dev extra: pip install -e .[dev])"
    return [script, "--config", str(REPO / "pyproject.toml")]


def run(worker: Path = REPO / "services" / "worker") -> subprocess.CompletedProcess:
    """`lint-imports` over this checkout's packages (with the worker package from `worker`)."""
    paths = [str(REPO / "shared"), str(worker), str(REPO / "services" / "ranker")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run([*lint_imports(), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_import_contract_holds():
    done = run()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_import_contract_catches_an_upward_import(tmp_path):
    """A copy of the worker whose training config imports the CLI layer breaks the layers (so the contract is live)."""
    copy = tmp_path / "worker"
    shutil.copytree(REPO / "services" / "worker" / "semrec_worker", copy / "semrec_worker")
    config = copy / "semrec_worker" / "training" / "config.py"
    config.write_text(config.read_text() + "\nfrom semrec_worker.commands import evaluate  # noqa: E402,F401\n")
    done = run(copy)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and "semrec_worker.training.config -> semrec_worker.commands" in done.stdout
