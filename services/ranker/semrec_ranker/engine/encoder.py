"""Sequence encoders: ONNX Runtime (the served path) and a plain PyTorch eager one (the benchmark's peer)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
from semrec.bundle import ENCODER_INPUT, ENCODER_OUTPUT

log = logging.getLogger("semrec.ranker")


class SequenceEncoder(Protocol):
    provider: str

    def encode(self, item_ids: np.ndarray) -> np.ndarray:
        """int64 [batch, max_len] left-padded item indices -> float32 [batch, dim] L2-normalised."""
        ...


class UnsafeModelError(ValueError):
    """The model would make ONNX Runtime read files of the ranker host (tensors with external data)."""


def _graph_tensors(graph) -> Iterator:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node) -> Iterator:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("sparse_tensor"):
            yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
        for sparse in attribute.sparse_tensors:
            yield from (sparse.values, sparse.indices)
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for graph in attribute.graphs:
            yield from _graph_tensors(graph)


def refuse_external_data(model: bytes) -> None:
    """Raise UnsafeModelError if any tensor of the model (initializers, constants, subgraphs, functions) keeps
    its data outside the model. ONNX Runtime would resolve such paths on the ranker's file system, so a bundle
    written to Redis could make the ranker read (and serve) local files."""
    import onnx

    try:
        proto = onnx.load_model_from_string(model)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise UnsafeModelError(f"encoder is not a valid ONNX model ({type(exc).__name__})") from None
    tensors = list(_graph_tensors(proto.graph))
    for function in proto.functions:
        for node in function.node:
            tensors += _node_tensors(node)
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise UnsafeModelError(f"encoder tensor {tensor.name!r} has external data; refusing the model "
                                   "(bundles must embed every tensor)")  # fmt: skip


def choose_providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        log.warning("SEMREC_DEVICE=cuda but onnxruntime has no CUDAExecutionProvider; using CPU")
    return ["CPUExecutionProvider"]


class OnnxEncoder:
    """One InferenceSession shared by all request threads (`run` is thread-safe).

    Threads are set deliberately: requests already run in parallel on the server's thread pool, so each
    inference gets `threads` intra-op threads (default 1) and no inter-op pool, instead of every request
    spinning up one thread per core and fighting over the same cores.
    """

    def __init__(self, model: bytes | Path, threads: int = 1, device: str = "auto") -> None:
        """`model`: the bundle's bytes (refused if any tensor has external data), or the path of the copy that
        `engine/artifacts.py` wrote from such checked bytes with its tensors in a file next to it (ONNX
        Runtime memory-maps them, so the workers of a host share them)."""
        import onnxruntime as ort

        if not isinstance(model, Path):
            refuse_external_data(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = str(model) if isinstance(model, Path) else model
        self.session = ort.InferenceSession(source, sess_options=options, providers=choose_providers(device))
        self.provider = self.session.get_providers()[0]
        names = [i.name for i in self.session.get_inputs()]
        if ENCODER_INPUT not in names:
            raise ValueError(f"encoder has inputs {names}, expected '{ENCODER_INPUT}'")

    def encode(self, item_ids: np.ndarray) -> np.ndarray:
        return self.session.run([ENCODER_OUTPUT], {ENCODER_INPUT: item_ids})[0]


class TorchEagerEncoder:
    """A torch module run eagerly under `inference_mode`: the naive peer the benchmark compares against."""

    provider = "torch-eager"

    def __init__(self, module) -> None:
        import torch

        self.torch = torch
        self.module = module.eval()

    def encode(self, item_ids: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.module(self.torch.from_numpy(item_ids)).numpy()
