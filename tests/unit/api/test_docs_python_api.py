"""docs/python-api.md is a notebook: its python blocks run in order, in one namespace, without Redis."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_python_api_doc_runs_end_to_end(tmp_path, monkeypatch):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)  # the doc writes runs/toolshop relative to the working directory
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
    assert (tmp_path / "runs" / "toolshop" / "model.pt").exists()
    assert (tmp_path / "runs" / "toolshop" / "data" / "toolshop" / "interactions.csv.gz").exists()
    top = namespace["top"]
    assert top.groupby("user")["rank"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 2
