"""The install extras resolve on their own: CPU (`worker`, `ranker`) and GPU (`gpu-worker`, `gpu-ranker`)
never mix torch pins, and onnxruntime-gpu never sits beside onnxruntime."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def pins(requirements: list[str]) -> dict[str, str]:
    return {name(r): r.replace(" ", "") for r in requirements}


def test_gpu_worker_extra_matches_vllms_pins_in_the_requirements_file():
    lines = (REPO / "deploy" / "requirements-gpu-worker.txt").read_text().splitlines()
    file_pins = pins([line for line in lines if line.strip() and not line.startswith("#")])
    extra = pins(EXTRAS["gpu-worker"])
    assert set(file_pins) == {"vllm", "torch", "transformers"}
    for package, requirement in file_pins.items():
        assert extra[package] == requirement, f"{package}: extra {extra[package]} vs requirements file {requirement}"


def test_cpu_and_gpu_extras_each_have_one_torch_and_one_onnxruntime():
    assert pins(EXTRAS["worker"])["torch"] == "torch==2.13.0"  # the CPU path used by deploy/local/bootstrap.sh
    assert "gpu" not in EXTRAS, "the old mixed `gpu` extra put onnxruntime-gpu beside onnxruntime"
    for extra, runtime in (("worker", "onnxruntime"), ("ranker", "onnxruntime"),
                           ("gpu-worker", "onnxruntime-gpu"), ("gpu-ranker", "onnxruntime-gpu")):  # fmt: skip
        names = set(pins(EXTRAS[extra]))
        assert runtime in names and ({"onnxruntime", "onnxruntime-gpu"} - {runtime}).isdisjoint(names), extra
    assert "torch" not in pins(EXTRAS["ranker"]) and "torch" not in pins(EXTRAS["gpu-ranker"])
    # the GPU extras are the CPU ones with the GPU builds swapped in, nothing else left out
    cpu_worker = set(pins(EXTRAS["worker"])) - {"onnxruntime"}
    assert cpu_worker <= set(pins(EXTRAS["gpu-worker"]))
    assert set(pins(EXTRAS["ranker"])) - {"onnxruntime"} == set(pins(EXTRAS["gpu-ranker"])) - {"onnxruntime-gpu"}


def test_docs_give_the_cpu_torch_index_and_the_gpu_extras():
    readme = (REPO / "README.md").read_text()
    assert "https://download.pytorch.org/whl/cpu" in readme
    assert ".[gpu-worker,gpu-ranker]" in readme and ".[worker,ranker,gpu]" not in readme
    deploy = (REPO / "docs" / "deploy.md").read_text()
    assert ".[gpu-worker,gpu-ranker]" in deploy and ".[worker,ranker,gpu]" not in deploy
