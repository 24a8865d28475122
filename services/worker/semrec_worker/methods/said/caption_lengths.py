"""How long SAID's captions are in LM tokens, and the cap that keeps a given share of them whole.

`python -m semrec_worker.methods.said.caption_lengths --data DIR [--llm default] [--out results/....json]`
measures every item's caption (`data.text.caption`, the same text every LM method reads) over the paper's
fields (title, category and brand) with the LM's tokenizer: the length percentiles and the cap that leaves
>= 95% of captions uncut, the share of brands and categories a given cap would lose.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semrec_worker.data.records import Item
from semrec_worker.data.text import CAPTION_FIELDS, caption


def caption_lengths(items: Sequence[Item], tokenizer, fields: Sequence[str] = CAPTION_FIELDS) -> np.ndarray:
    """Tokens per caption (no special tokens, no EOS)."""
    texts = [caption(item, fields=tuple(fields), max_tokens=None) for item in items]
    return np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]], dtype=np.int64)


def field_kept(items: Sequence[Item], tokenizer, cap: int, field: str, fields: Sequence[str] = CAPTION_FIELDS) -> float:
    """Of the items that have `field`, the share whose capped caption still holds the whole field: the caption's
    text up to the end of that field's value fits in `cap` tokens."""
    having = [item for item in items if field in item.attributes()]
    if not having:
        return 1.0
    kept = 0
    for item in having:
        text = caption(item, fields=tuple(fields), max_tokens=None)
        marker = f"{field}: {item.attributes()[field]}"
        through_field = text[: text.index(marker) + len(marker)]
        kept += len(tokenizer(through_field, add_special_tokens=False)["input_ids"]) <= cap
    return kept / len(having)


def whole_share_cap(lengths: np.ndarray, share: float = 0.95) -> int:
    """The smallest cap that keeps at least `share` of the captions whole."""
    ordered = np.sort(lengths)
    return int(ordered[max(int(np.ceil(share * len(ordered))), 1) - 1])


def measure(items: Sequence[Item], tokenizer, caps: Sequence[int], share: float = 0.95) -> dict[str, Any]:
    lengths = caption_lengths(items, tokenizer)
    cap = whole_share_cap(lengths, share)
    report: dict[str, Any] = {
        "fields": list(CAPTION_FIELDS), "items": len(items),
        "tokens": {"mean": round(float(lengths.mean()), 2), **{f"p{q}": int(np.percentile(lengths, q, method="higher"))
                                                               for q in (50, 90, 95, 99)}, "max": int(lengths.max())},
        f"cap_keeping_{round(share * 100)}pct_whole": cap, "by_cap": {},
    }
    for c in sorted({*caps, cap}):
        report["by_cap"][str(c)] = {"whole": round(float((lengths <= c).mean()), 4),
                                    "brand_kept": round(field_kept(items, tokenizer, c, "brand"), 4),
                                    "category_kept": round(field_kept(items, tokenizer, c, "category"), 4)}
    return report


def main(argv: Sequence[str] | None = None) -> None:
    from semrec_worker.data.dataset import DataConfig, load_dataset
    from semrec_worker.lm.loader import load_language_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--llm", default="default")
    parser.add_argument("--caps", default="16,32,64")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    dataset = load_dataset(DataConfig(data=args.data))
    lm = load_language_model(args.llm)
    report = {"dataset": dataset.name, "lm": lm.name,
              **measure(dataset.items, lm.tokenizer, [int(c) for c in args.caps.split(",")])}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
