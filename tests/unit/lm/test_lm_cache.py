"""The float cache of the default LM is published with one rename, safely when two jobs write it at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from semrec_worker.lm.loader import publish_directory


def written(directory: Path, marker: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_text(marker)
    return directory


def test_the_first_writer_publishes_its_directory(tmp_path):
    target = tmp_path / "SmolLM2-f32"
    publish_directory(written(tmp_path / "a.tmp", "first"), target)
    assert (target / "model.safetensors").read_text() == "first"
    assert not (tmp_path / "a.tmp").exists()


def test_a_second_writer_keeps_the_published_copy_and_drops_its_own(tmp_path):
    target = tmp_path / "SmolLM2-f32"
    publish_directory(written(tmp_path / "a.tmp", "first"), target)
    publish_directory(written(tmp_path / "b.tmp", "second"), target)
    assert (target / "model.safetensors").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SmolLM2-f32"]


def test_a_target_left_incomplete_is_an_error_not_silently_used(tmp_path):
    target = tmp_path / "SmolLM2-f32"
    (target / "leftover").mkdir(parents=True)
    with pytest.raises(OSError):
        publish_directory(written(tmp_path / "a.tmp", "first"), target)
    assert (tmp_path / "a.tmp" / "model.safetensors").exists()
