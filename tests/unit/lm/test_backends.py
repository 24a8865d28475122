"""Embedding backends: pooling maths, batching that never changes a text's vector, the sentence encoders,
automatic backend choice, and (only where vllm + CUDA exist) vllm against transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from semrec.errors import UserError
from semrec_worker.lm import load_language_model
from semrec_worker.lm.backends import (
    SentenceTransformersBackend,
    TransformersBackend,
    hidden_state_module,
    language_model_backend,
    last_token_pool,
    mean_pool,
    text_encoder,
    vllm_available,
)

TEXTS = ["a red running shoe", "oscilloscope probe 10x", "x", "a much longer caption about a lab pipette set"]


@pytest.fixture(scope="module")
def tiny_lm():
    return load_language_model("tiny")


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(mean_pool(hidden, mask), torch.tensor([[2.0, 3.0]]))


def test_last_token_pool_handles_right_and_left_padding():
    hidden = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    right = torch.tensor([[1, 1, 0], [1, 1, 1]])
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert torch.equal(last_token_pool(hidden, right), torch.stack([hidden[0, 1], hidden[1, 2]]))
    assert torch.equal(last_token_pool(hidden, left), torch.stack([hidden[0, 2], hidden[1, 2]]))


def test_hidden_state_module_skips_the_lm_head(tiny_lm):
    encoder = hidden_state_module(tiny_lm.model)
    assert not hasattr(encoder, "lm_head") and hasattr(encoder, "layers")


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_batching_and_sorting_do_not_change_vectors(tiny_lm, pooling):
    batched = TransformersBackend(tiny_lm, pooling, batch_size=3, progress=False).embed(TEXTS)
    alone = np.vstack([TransformersBackend(tiny_lm, pooling, batch_size=1, progress=False).embed([t]) for t in TEXTS])
    assert batched.shape == (len(TEXTS), tiny_lm.hidden_size) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, alone, atol=1e-4)


def test_mean_and_last_pooling_differ_and_bf16_stays_close(tiny_lm):
    mean = TransformersBackend(tiny_lm, "mean", progress=False).embed(TEXTS)
    last = TransformersBackend(tiny_lm, "last", progress=False).embed(TEXTS)
    bf16 = TransformersBackend(tiny_lm, "mean", precision="bf16", progress=False).embed(TEXTS)
    assert not np.allclose(mean, last)
    assert cosine_rows(mean, bf16).min() > 0.95
    assert TransformersBackend(tiny_lm, progress=False).embed([]).shape == (0, tiny_lm.hidden_size)


def test_auto_backend_is_transformers_on_cpu_and_vllm_refused_without_it(tiny_lm):
    backend = language_model_backend("tiny", "last", kind="auto", progress=False)
    assert isinstance(backend, TransformersBackend) and backend.pooling == "last"
    if not vllm_available():
        with pytest.raises(UserError, match="vllm"):
            language_model_backend("default", kind="vllm")


def test_tiny_sentence_encoder_is_deterministic():
    a = text_encoder("tiny", progress=False).embed(TEXTS)
    b = text_encoder("tiny", progress=False).embed(TEXTS)
    assert a.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_text_encoder_rejects_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(UserError, match="modules.json"):
        text_encoder(str(tmp_path))


def test_packaged_minilm_puts_related_texts_closer():
    backend = SentenceTransformersBackend(progress=False)  # the real packaged all-MiniLM-L6-v2
    v = backend.embed(["red running shoes", "crimson sneakers for jogging", "digital oscilloscope probe"])
    assert v.shape == (3, 384) and backend.dim == 384
    sims = cosine_rows(v[[0, 0]], v[[1, 2]])
    assert sims[0] > sims[1] + 0.2


@pytest.mark.skipif(not vllm_available(), reason="needs the vllm package and a CUDA device (GPU worker image)")
def test_vllm_matches_transformers_per_item():
    texts = [f"title: item {i}, brand: acme, category: lab > tools" for i in range(16)] + TEXTS
    for pooling in ("mean", "last"):
        reference = language_model_backend("default", pooling, kind="transformers", progress=False).embed(texts)
        fast = language_model_backend("default", pooling, kind="vllm", progress=False).embed(texts)
        assert fast.shape == reference.shape
        assert cosine_rows(reference, fast).min() >= 0.99
