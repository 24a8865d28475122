"""The item matrix, its int8 copy, the HNSW index and the encoder's weights as files, memory-mapped, so all
workers of a host share one copy.

`SEMREC_SHARED_DIR` names a directory; each bundle's files go to `<dir>/<n>x<dim>-<xxh3 of their
content>/`: `vectors.npy`, `items_t.npy`, `scales.npy`, `quantized.json`, `ann.usearch`, and the encoder as
`encoder.onnx` with its tensors in `encoder.data` (ONNX external data, which ONNX Runtime memory-maps on
CPU: its item-embedding table is n_items x dim floats, as large as the item matrix). The first worker to
load a version writes them into a temporary directory and renames it into place (atomic: the others see a
complete directory or none, and a loser of the race uses the winner's); every worker then maps the files
read-only (`np.load(mmap_mode="r")`, usearch `Index.restore(view=True)`, the ONNX Runtime session from the
file), so the pages live once in the page cache whatever the number of workers. Older directories beyond
the newest `keep` are deleted (a process that still maps one keeps its pages until it unmaps them: Linux
semantics).

The directory must belong to this user and be writable by no one else (checked): another local user who
could plant `encoder.data` or the arrays would choose what the ranker serves.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash
from semrec.errors import UserError

from semrec_ranker.engine.index import QuantizedMatrix, quantize

log = logging.getLogger("semrec.ranker")

COMPLETE = "complete"  # written last inside the temporary directory


@dataclass
class ServingArrays:
    vectors: np.ndarray  # float32 [n, dim]
    quantized: QuantizedMatrix | None
    ann_path: Path | None  # the HNSW index file (None: in memory, or no index)
    directory: Path | None
    encoder_path: Path | None = None  # the encoder with external data (None: load it from the bundle bytes)


def content_key(vectors: np.ndarray, ann_index: bytes | None, encoder_onnx: bytes | None = None) -> str:
    digest = xxhash.xxh3_64()
    digest.update(np.ascontiguousarray(vectors).data)
    for blob in (ann_index, encoder_onnx):
        digest.update(b"|" if blob is None else xxhash.xxh3_64_digest(blob))
    n, dim = vectors.shape
    return f"{n}x{dim}-{digest.hexdigest()}"


def _write_encoder(directory: Path, encoder_onnx: bytes) -> None:
    import onnx

    model = onnx.load_model_from_string(encoder_onnx)
    onnx.save_model(model, directory / "encoder.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="encoder.data", size_threshold=1024)  # fmt: skip


def _check_owned(root: Path) -> None:
    info = root.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UserError(f"SEMREC_SHARED_DIR {root} must belong to this user and not be writable by group or others")


def _write(directory: Path, vectors: np.ndarray, ann_index: bytes | None, with_quantized: bool,
           encoder_onnx: bytes | None) -> None:  # fmt: skip
    np.save(directory / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
    if with_quantized:
        quantized = quantize(vectors)
        np.save(directory / "items_t.npy", quantized.items_t)
        np.save(directory / "scales.npy", quantized.scales)
        (directory / "quantized.json").write_text(json.dumps({"max_error": quantized.max_error,
                                                               "max_norm": quantized.max_norm}))  # fmt: skip
    if ann_index is not None:
        (directory / "ann.usearch").write_bytes(ann_index)
    if encoder_onnx is not None:
        _write_encoder(directory, encoder_onnx)
    (directory / COMPLETE).write_text("")


def _prune(root: Path, keep: int, current: Path) -> None:
    done = [d for d in root.iterdir() if d.is_dir() and (d / COMPLETE).exists() and d != current]
    done.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for stale in done[max(keep - 1, 0) :]:
        shutil.rmtree(stale, ignore_errors=True)


def _open(directory: Path, with_quantized: bool, has_ann: bool, has_encoder: bool) -> ServingArrays:
    vectors = np.load(directory / "vectors.npy", mmap_mode="r")
    quantized = None
    if with_quantized:
        bounds = json.loads((directory / "quantized.json").read_text())
        quantized = QuantizedMatrix(np.load(directory / "items_t.npy", mmap_mode="r"),
                                    np.load(directory / "scales.npy", mmap_mode="r"),
                                    bounds["max_error"], bounds["max_norm"])  # fmt: skip
    return ServingArrays(vectors, quantized, directory / "ann.usearch" if has_ann else None, directory,
                         directory / "encoder.onnx" if has_encoder else None)  # fmt: skip


def shared_arrays(root: Path, vectors: np.ndarray, ann_index: bytes | None, with_quantized: bool,
                  encoder_onnx: bytes | None = None, keep: int = 3) -> ServingArrays:  # fmt: skip
    """The bundle's arrays mapped from files under `root` (written by the first caller for this content);
    `encoder_onnx` (already checked to hold no external data) is written with its tensors in a file."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_owned(root)
    directory = root / content_key(vectors, ann_index, encoder_onnx)
    needs_quantized = with_quantized and not (directory / "quantized.json").exists()
    if not (directory / COMPLETE).exists() or needs_quantized:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        try:
            _write(staging, vectors, ann_index, with_quantized, encoder_onnx)
            # written without the int8 copy: replace it; but not a copy another worker finished meanwhile
            # (with the int8 copy): that worker may already be serving from it
            if (needs_quantized and (directory / COMPLETE).exists()
                    and not (directory / "quantized.json").exists()):
                shutil.rmtree(directory, ignore_errors=True)
            try:
                os.rename(staging, directory)
                log.info("wrote the serving arrays to %s", directory)
            except OSError:  # another worker renamed its copy first: use that one
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    os.utime(directory)
    _prune(root, keep, directory)
    return _open(directory, with_quantized, ann_index is not None, encoder_onnx is not None)


def in_memory_arrays(vectors: np.ndarray, with_quantized: bool) -> ServingArrays:
    return ServingArrays(vectors, quantize(vectors) if with_quantized else None, None, None)
