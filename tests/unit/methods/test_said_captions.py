"""SAID's caption: the paper's fields by default, the same text every LM method reads, and the length
measurement behind the default cap."""

from __future__ import annotations

import numpy as np
from semrec_worker.data.records import Item
from semrec_worker.data.text import CAPTION_MAX_TOKENS, caption
from semrec_worker.lm import load_language_model
from semrec_worker.methods.llm_settings import LHSettings
from semrec_worker.methods.said.caption_lengths import caption_lengths, field_kept, measure, whole_share_cap
from semrec_worker.methods.said.settings import SAIDSettings


def test_the_default_caption_has_title_category_and_brand():
    settings = SAIDSettings()
    assert set(settings.caption_fields) == {"title", "brand", "category"}
    assert settings.max_caption_tokens == LHSettings().max_caption_tokens == CAPTION_MAX_TOKENS
    item = Item("x", title="Glass Beaker 250 ml", brand="Pyrex", categories=["Lab", "Glassware"])
    assert caption(item, settings.caption_fields, max_tokens=None) == (
        "title: Glass Beaker 250 ml, brand: Pyrex, category: Lab > Glassware")


def test_lengths_and_the_cap_that_keeps_95_percent_whole():
    tokenizer = load_language_model("tiny").tokenizer  # one token per character
    items = [Item(f"i{n}", title="a" * n) for n in range(1, 101)]  # captions "title: " + n chars = n + 7 tokens
    lengths = caption_lengths(items, tokenizer)
    np.testing.assert_array_equal(lengths, np.arange(1, 101) + 7)
    assert whole_share_cap(lengths, 0.95) == 95 + 7 and (lengths <= 102).mean() >= 0.95 > (lengths <= 101).mean()
    branded = [Item("b", title="abc", brand="zeta"), Item("c", title="abcdefghij", brand="zeta")]
    # "title: abc, brand: zeta" is 23 tokens; at 20 the brand is cut in both captions
    assert field_kept(branded, tokenizer, 23, "brand") == 0.5 and field_kept(branded, tokenizer, 20, "brand") == 0.0
    report = measure(items, tokenizer, caps=[50])
    assert report["cap_keeping_95pct_whole"] == 102 and report["by_cap"]["50"]["whole"] == 0.43
