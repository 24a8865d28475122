"""Item captions as in the SAID paper: `title: ..., brand: ..., category: ...` from whatever attributes
an item has (missing ones skipped), capped at a number of tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from semrec_worker.data.records import Item

CAPTION_FIELDS: tuple[str, ...] = ("title", "brand", "category")


def caption(
    item: Item,
    fields: Sequence[str] = CAPTION_FIELDS,
    max_tokens: int | None = 64,
    tokenize: Callable[[str], list[str]] | None = None,
    detokenize: Callable[[list[str]], str] | None = None,
) -> str:
    """The caption text. The cap counts whitespace words unless a tokenizer pair is given."""
    attrs = item.attributes()
    text = ", ".join(f"{key}: {attrs[key]}" for key in fields if key in attrs)
    if not text:
        text = f"item: {item.item_id}"
    if max_tokens is None:
        return text
    if tokenize is not None and detokenize is not None:
        tokens = tokenize(text)
        return text if len(tokens) <= max_tokens else detokenize(tokens[:max_tokens])
    words = text.split()
    return text if len(words) <= max_tokens else " ".join(words[:max_tokens])
