"""The item -> text builders (the only ones) and the content hash each item encoder declares.

- `caption`: SAID's caption `title: ..., brand: ..., category: ...` from whatever of the chosen attributes
  an item has (missing ones skipped), optionally capped at a number of tokens; LH, LLM2X, LLMSeqSim, the
  SAID trainer and the text-map refresh encoder read items through it.
- `item_prompt`: LLMEmb's attribute prompt (eq. 3), over every attribute of the item.
- `item_name`: an item's name (its title, else its id), what LLMSeqPrompt's prompts list and its LM writes.

A `TextView` names exactly the text an encoder reads from an item: its `key` says which builder with which
settings, and `content_hashes(..., view)` hashes that text, so `semrec refresh` re-encodes an item when (and
only when) something the encoder reads has changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import xxhash

from semrec_worker.data.records import Item

CAPTION_FIELDS: tuple[str, ...] = ("title", "brand", "category")  # SAID's caption: title, category and brand
# LM-token cap of the caption for every LM method that reads it (SAID, LH): 95.2% of Scientific's captions are
# whole under SmolLM2's tokenizer (p95 = 83 tokens; ml-100k: p95 = 24), results/said-caption-lengths-*.json
CAPTION_MAX_TOKENS = 83
PROMPT_PREFIX = "The {domain} item has the following attributes: "
DOMAINS = {"amazon2018-scientific": "scientific", "amazon2018-videogames": "video game", "ml-100k": "movie"}


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


def item_name(item: Item, max_chars: int | None = None) -> str:
    """The item's name: its title (whitespace collapsed, cut to `max_chars`), else its id."""
    name = " ".join((item.title or "").split()) or item.item_id
    return name if max_chars is None else name[:max_chars].strip()


def item_attributes(item: Item) -> dict[str, str]:
    """Every textual attribute of the item (its id when it has none): what LLMEmb's prompt reads."""
    return item.attributes() or {"id": item.item_id}


def item_prompt(attributes: dict[str, str], domain: str, max_value_chars: int = 100) -> str:
    """LLMEmb eq. 3: "The {domain} item has the following attributes: key is value; ..." (values cut)."""
    body = "; ".join(f"{key} is {str(value)[:max_value_chars].strip()}" for key, value in attributes.items())
    return PROMPT_PREFIX.format(domain=domain) + body + ";"


def domain_for(dataset_name: str, domain: str | None = None) -> str:
    """The domain word of LLMEmb's prompt: given, or from the dataset name."""
    return domain or DOMAINS.get(dataset_name, dataset_name)


class TextView(Protocol):
    """The text an item encoder reads from an item."""

    @property
    def key(self) -> str: ...

    def text(self, item: Item) -> str: ...


@dataclass(frozen=True)
class CaptionView:
    """The full caption over `fields` (a token cap applied later only shortens it)."""

    fields: tuple[str, ...] = CAPTION_FIELDS

    @property
    def key(self) -> str:
        return "caption:" + ",".join(self.fields)

    def text(self, item: Item) -> str:
        return caption(item, self.fields, max_tokens=None)


@dataclass(frozen=True)
class PromptView:
    """LLMEmb's prompt: every attribute, values cut to `max_value_chars`."""

    domain: str
    max_value_chars: int = 100

    @property
    def key(self) -> str:
        return f"llmemb-prompt:{self.domain}:{self.max_value_chars}"

    def text(self, item: Item) -> str:
        return item_prompt(item_attributes(item), self.domain, self.max_value_chars)


CAPTION_VIEW = CaptionView()


def content_hashes(item_ids: list[str], items: dict[str, Item], view: TextView = CAPTION_VIEW) -> np.ndarray:
    """uint64 xxh3 of the text `view` reads from each item, aligned with `item_ids` (0 where there is no item)."""
    out = np.zeros(len(item_ids), dtype=np.uint64)
    for row, item_id in enumerate(item_ids):
        item = items.get(item_id)
        if item is not None:
            out[row] = xxhash.xxh3_64_intdigest(view.text(item).encode())
    return out
