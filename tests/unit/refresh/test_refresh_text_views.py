"""The refresh diff hashes exactly the text each item encoder reads: an item is re-encoded when an attribute
that encoder reads changed (LLMEmb reads every attribute, so an edited description counts; SAID reads its
run's caption fields; the text map reads the caption), and not for an attribute it never reads."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from semrec.bundle import Bundle
from semrec_worker.core.reduction import fit_pca
from semrec_worker.data.records import Item
from semrec_worker.data.text import CAPTION_VIEW, CaptionView, PromptView, content_hashes
from semrec_worker.methods.llmemb.refresh_encoder import LLMEmbItemEncoder
from semrec_worker.methods.said.refresh_encoder import SAIDItemEncoder
from semrec_worker.refresh.encoders import LinearTextMapEncoder
from semrec_worker.refresh.job import TEXT_VIEW_KEY, diff_items, refresh_bundle
from serving_helpers import tiny_bundle

SERVING = {"similarity": "cosine", "max_norm": None, "model_dim": 16, "dim": 16}


def catalogue() -> dict[str, Item]:
    return {f"i{n}": Item(f"i{n}", title=f"glass beaker {n} ml", brand="Vitro", categories=["Lab", "Glass"],
                          extra={"description": f"borosilicate, graduated, item {n}"}) for n in range(30)}


def llmemb_encoder() -> LLMEmbItemEncoder:
    pca = fit_pca(np.random.default_rng(0).normal(size=(10, 8)), 4)
    spec = {"kind": "llmemb", "lm": "tiny", "domain": "scientific", "max_value_chars": 100, **SERVING}
    return LLMEmbItemEncoder(spec, {**pca.arrays("rat_pca_"), "rat_scale": np.array(1.0)}, None)


def said_encoder(caption_fields: list[str]) -> SAIDItemEncoder:
    spec = {"kind": "said", "said_config": {"caption_fields": caption_fields}, "row_epochs": 0, **SERVING}
    return SAIDItemEncoder(spec, {"scale": np.array(1.0)})


class FixedEncoder:
    """Stands in for the encoder's model (its text view is the real encoder's): a distinct unit vector per call."""

    def __init__(self, view, dim: int) -> None:
        self.text_view, self.dim, self.kind, self.calls = view, dim, "fixed", []

    def encode(self, items: list[Item]) -> np.ndarray:
        self.calls.append([i.item_id for i in items])
        out = np.zeros((len(items), self.dim), np.float32)
        out[:, 0] = 1.0
        return out


def served(items: dict[str, Item], view) -> tuple[Bundle, np.ndarray]:
    base = tiny_bundle(len(items))
    bundle = Bundle(base.encoder_onnx, list(items), base.item_vectors, base.popularity,
                    {**base.metadata, TEXT_VIEW_KEY: view.key})
    return bundle, content_hashes(list(items), items, view)


def edited(items: dict[str, Item], item_id: str, **changes) -> dict[str, Item]:
    out = copy.deepcopy(items)
    item = out[item_id]
    for key, value in changes.items():
        if key == "description":
            item.extra["description"] = value
        else:
            setattr(item, key, value)
    return out


ENCODERS = {
    "llmemb": (llmemb_encoder, ["description", "title", "brand"], []),
    "said (caption fields with the description)": (lambda: said_encoder(["title", "description"]),
                                                   ["description", "title"], ["brand"]),
    "said (default caption fields)": (lambda: said_encoder(["title", "brand"]), ["title", "brand"], ["description"]),
    "linear-text-map": (lambda: LinearTextMapEncoder("hashing", np.zeros((1, 1)), np.zeros(1), 0.0),
                        ["title", "brand"], ["description"]),
}


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_an_item_is_re_encoded_exactly_when_an_attribute_its_encoder_reads_changed(kind):
    make, read, unread = ENCODERS[kind]
    view = make().text_view
    items = catalogue()
    bundle, hashes = served(items, view)
    for attribute in read:
        diff, _ = diff_items(bundle, hashes, edited(items, "i3", **{attribute: "an edited value"}), view)
        assert diff.changed == ["i3"] and diff.unchanged == len(items) - 1, attribute
    for attribute in unread:
        diff, _ = diff_items(bundle, hashes, edited(items, "i3", **{attribute: "an edited value"}), view)
        assert diff.empty and diff.unchanged == len(items), attribute


def test_the_views_the_encoders_declare():
    assert llmemb_encoder().text_view == PromptView("scientific", 100)
    assert said_encoder(["title", "description"]).text_view == CaptionView(("title", "description"))
    assert LinearTextMapEncoder.text_view == CAPTION_VIEW
    item = catalogue()["i1"]
    assert "description is borosilicate" in llmemb_encoder().text_view.text(item)  # LLMEmb's prompt (eq. 3)
    assert llmemb_encoder().prompts([item]) == [llmemb_encoder().text_view.text(item)]


def test_refresh_re_encodes_the_edited_description_and_records_the_view():
    items = catalogue()
    view = llmemb_encoder().text_view
    bundle, hashes = served(items, view)
    encoder = FixedEncoder(view, bundle.dim)
    refreshed, new_hashes, diff = refresh_bundle(bundle, hashes, edited(items, "i5", description="now amber"),
                                                 encoder, "v2")
    assert encoder.calls == [["i5"]] and diff.changed == ["i5"]
    assert refreshed.metadata[TEXT_VIEW_KEY] == view.key and not np.array_equal(new_hashes, hashes)
    np.testing.assert_array_equal(refreshed.item_vectors[6:], bundle.item_vectors[6:])


def test_hashes_over_another_view_re_encode_every_item_once():
    """A bundle published with caption hashes, refreshed with the LLMEmb encoder: nothing can be trusted as
    unchanged (an edited description would not show in caption hashes), so every item is re-encoded once."""
    items = catalogue()
    bundle, hashes = served(items, CAPTION_VIEW)
    view = llmemb_encoder().text_view
    refreshed, new_hashes, diff = refresh_bundle(bundle, hashes, items, FixedEncoder(view, bundle.dim), "v2")
    assert len(diff.changed) == len(items) and diff.unchanged == 0
    again, _, second = refresh_bundle(refreshed, new_hashes, items, FixedEncoder(view, bundle.dim), "v3")
    assert second.empty and again is refreshed
