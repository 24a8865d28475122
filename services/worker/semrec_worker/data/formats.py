"""Readers for the supported on-disk formats. Every error names the file and the 1-based line.

- common: `interactions.csv[.gz]` (header user_id,item_id,timestamp) + `items.jsonl[.gz]`
  (the format of ../shared/datasets, see its README).
- movielens: `ratings.dat` + `movies.dat` (ML-1M, `::`-separated, latin-1) or `u.data` + `u.item` (ML-100K).
- amazon: Amazon Reviews 2018 ratings CSV (`item,user,rating,timestamp`, no header) + `meta_*.json[.gz]`
  (one object per line; the 2014 dumps' Python-literal lines are accepted too).
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from semrec.cli_builder import echo
from semrec.errors import DataError

from semrec_worker.data.records import Item, RawInteractions
from semrec_worker.data.timestamps import parse_timestamp


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, text) for every non-blank line; a decoding failure names the line."""
    if not path.exists():
        raise DataError(path, "file not found")
    try:
        with _open_bytes(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    raise DataError(path, f"not valid {encoding.upper()} text ({exc.reason})", lineno) from None
                text = text.rstrip("\r\n")
                if text.strip():
                    yield lineno, text
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(path, f"cannot read file ({exc})") from None


def find_file(directory: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.exists():
                return candidate
    return None


# ---------------------------------------------------------------------------------------------- common


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]


def read_common_items(path: Path) -> dict[str, Item]:
    """Items by id; when an id repeats, its last line wins and a warning gives the count."""
    items: dict[str, Item] = {}
    duplicates: dict[str, int] = {}
    for lineno, text in iter_lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON ({exc.msg})", lineno) from None
        if not isinstance(obj, dict) or "item_id" not in obj:
            raise DataError(path, "each line must be a JSON object with an 'item_id'", lineno)
        item_id = str(obj.pop("item_id"))
        title = obj.pop("title", None)
        brand = obj.pop("brand", None)
        categories = _as_list(obj.pop("categories", None))
        if item_id in items:
            duplicates.setdefault(item_id, lineno)
        items[item_id] = Item(item_id, title and str(title), brand and str(brand), categories, obj)
    if not items:
        raise DataError(path, "no items (empty file)")
    if duplicates:
        first_id, first_line = next(iter(duplicates.items()))
        echo(f"warning: {path}: {len(duplicates)} item id(s) appear more than once (the last line of each wins), "
             f"e.g. {first_id!r} again at line {first_line}")  # fmt: skip
    return items


def read_common_interactions(path: Path) -> RawInteractions:
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError(path, "empty file: expected a header 'user_id,item_id,timestamp' and rows")
    header = [h.strip() for h in next(csv.reader([first[1]]))]
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in header]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)} in header {header}", first[0])
    iu, ii, it = header.index("user_id"), header.index("item_id"), header.index("timestamp")
    users, items, times, linenos = [], [], [], []
    for lineno, text in lines:
        row = text.split(",") if '"' not in text else next(csv.reader([text]))
        if len(row) != len(header):
            raise DataError(path, f"expected {len(header)} fields, found {len(row)}", lineno)
        seconds = parse_timestamp(row[it])
        if seconds is None:
            raise DataError(
                path, f"timestamp {row[it]!r} is neither a number nor an ISO-8601 date-time", lineno
            )
        times.append(seconds)
        users.append(row[iu])
        items.append(row[ii])
        linenos.append(lineno)
    if not users:
        raise DataError(path, "no interactions (only a header)")
    return RawInteractions(np.array(users), np.array(items), np.array(times), path, np.array(linenos))


def read_common(directory: Path) -> tuple[RawInteractions, dict[str, Item]]:
    inter = find_file(directory, "interactions.csv")
    items = find_file(directory, "items.jsonl")
    if inter is None or items is None:
        raise DataError(directory, "expected interactions.csv[.gz] and items.jsonl[.gz]")
    return read_common_interactions(inter), read_common_items(items)


# ------------------------------------------------------------------------------------------- movielens


def _movielens_genres(directory: Path) -> list[str]:
    genre_file = find_file(directory, "u.genre")
    if genre_file is None:
        return [
            "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
            "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
            "War", "Western",
        ]
    return [t.split("|")[0] for _, t in iter_lines(genre_file, "latin-1")]


def read_movielens(directory: Path) -> tuple[RawInteractions, dict[str, Item]]:
    ratings_dat, movies_dat = find_file(directory, "ratings.dat"), find_file(directory, "movies.dat")
    u_data, u_item = find_file(directory, "u.data"), find_file(directory, "u.item")
    items: dict[str, Item] = {}
    users, item_ids, times, lines = [], [], [], []
    if ratings_dat and movies_dat:
        for lineno, text in iter_lines(movies_dat, "latin-1"):
            parts = text.split("::")
            if len(parts) != 3:
                raise DataError(movies_dat, "expected MovieID::Title::Genres", lineno)
            genres = [g for g in parts[2].split("|") if g]
            items[parts[0]] = Item(parts[0], parts[1], None, genres, {"genres": genres})
        for lineno, text in iter_lines(ratings_dat, "latin-1"):
            parts = text.split("::")
            if len(parts) != 4:
                raise DataError(ratings_dat, "expected UserID::MovieID::Rating::Timestamp", lineno)
            users.append(parts[0]), item_ids.append(parts[1]), lines.append(lineno)
            times.append(_number(parts[3], ratings_dat, lineno))
        source = ratings_dat
    elif u_data and u_item:
        genre_names = _movielens_genres(directory)
        for lineno, text in iter_lines(u_item, "latin-1"):
            parts = text.split("|")
            if len(parts) < 5 + len(genre_names):
                raise DataError(u_item, "expected id|title|release|video|url|genre flags", lineno)
            flags = parts[5 : 5 + len(genre_names)]
            genres = [g for g, f in zip(genre_names, flags, strict=True) if f == "1" and g != "unknown"]
            extra: dict[str, Any] = {"genres": genres}
            if parts[2][-4:].isdigit():
                extra["year"] = int(parts[2][-4:])
            items[parts[0]] = Item(parts[0], parts[1], None, genres, extra)
        for lineno, text in iter_lines(u_data, "latin-1"):
            parts = text.split("\t")
            if len(parts) != 4:
                raise DataError(u_data, "expected user<TAB>item<TAB>rating<TAB>timestamp", lineno)
            users.append(parts[0]), item_ids.append(parts[1]), lines.append(lineno)
            times.append(_number(parts[3], u_data, lineno))
        source = u_data
    else:
        raise DataError(directory, "no MovieLens files: expected ratings.dat+movies.dat or u.data+u.item")
    if not users:
        raise DataError(source, "no ratings (empty file)")
    return RawInteractions(np.array(users), np.array(item_ids), np.array(times), source, np.array(lines)), items


def _number(text: str, path: Path, lineno: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(path, f"{text!r} is not a number", lineno) from None


# ---------------------------------------------------------------------------------------------- amazon


def read_amazon(directory: Path) -> tuple[RawInteractions, dict[str, Item]]:
    ratings = sorted(p for p in directory.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    metas = sorted(p for p in directory.iterdir() if p.name.startswith("meta_") and ".json" in p.name)
    if not ratings or not metas:
        raise DataError(directory, "expected an Amazon ratings CSV (item,user,rating,timestamp) and a meta_*.json[.gz]")
    users, item_ids, times, lines = [], [], [], []
    source = ratings[0]
    for lineno, text in iter_lines(ratings[0]):
        parts = text.split(",")
        if len(parts) != 4:
            raise DataError(ratings[0], "expected item,user,rating,timestamp", lineno)
        if lineno == 1 and not parts[3].strip().replace(".", "").isdigit():
            continue  # a header row
        item_ids.append(parts[0]), users.append(parts[1]), lines.append(lineno)
        times.append(_number(parts[3], ratings[0], lineno))
    if not users:
        raise DataError(ratings[0], "no ratings (empty file)")
    items: dict[str, Item] = {}
    for lineno, text in iter_lines(metas[0]):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            try:
                obj = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise DataError(metas[0], "neither JSON nor a Python literal", lineno) from None
        if not isinstance(obj, dict) or "asin" not in obj:
            raise DataError(metas[0], "expected an object with 'asin'", lineno)
        cats = obj.get("category") or obj.get("categories") or []
        if cats and isinstance(cats[0], list):  # 2014 dumps: list of category paths
            cats = cats[0]
        title = obj.get("title")
        if not title:
            continue  # UniSRec protocol: items without a title are dropped
        items[str(obj["asin"])] = Item(str(obj["asin"]), str(title), obj.get("brand") or None, _as_list(cats))
    return RawInteractions(np.array(users), np.array(item_ids), np.array(times), source, np.array(lines)), items


def detect_format(directory: Path) -> str:
    if find_file(directory, "interactions.csv") and find_file(directory, "items.jsonl"):
        return "common"
    if (find_file(directory, "ratings.dat") and find_file(directory, "movies.dat")) or (
        find_file(directory, "u.data") and find_file(directory, "u.item")
    ):
        return "movielens"
    if any(p.name.startswith("meta_") for p in directory.iterdir()):
        return "amazon"
    raise DataError(
        directory,
        "unrecognised dataset folder: expected interactions.csv+items.jsonl (common), MovieLens "
        "(ratings.dat+movies.dat or u.data+u.item) or Amazon 2018 (ratings CSV + meta_*.json)",
    )


def folder_of_file(path: Path, fmt: str | None = None) -> tuple[Path, str]:
    """(folder, format) when `path` is a data file that its folder's reader would read, so that e.g.
    `--data shop/interactions.csv` means `--data shop`; any other file is an error."""
    folder = path.parent
    try:
        fmt = fmt or detect_format(folder)
    except DataError:
        fmt = None
    if fmt is not None and path.resolve() in {p.resolve() for p in data_files(folder, fmt)}:
        return folder, fmt
    raise DataError(
        path,
        "expected a dataset folder (e.g. the folder holding interactions.csv and items.jsonl); "
        f"this file is not one of its folder's data files{f' ({fmt} format)' if fmt else ''}",
    )


def data_files(directory: Path, fmt: str) -> list[Path]:
    """The files the `fmt` reader reads from `directory` (those present)."""
    if fmt == "common":
        found = [find_file(directory, "interactions.csv"), find_file(directory, "items.jsonl")]
    elif fmt == "movielens":
        found = [find_file(directory, n) for n in ("ratings.dat", "movies.dat", "u.data", "u.item", "u.genre")]
    elif fmt == "amazon":
        ratings = sorted(p for p in directory.iterdir() if p.name.endswith((".csv", ".csv.gz")))
        metas = sorted(p for p in directory.iterdir() if p.name.startswith("meta_") and ".json" in p.name)
        found = ratings[:1] + metas[:1]
    else:
        found = []
    return [p for p in found if p is not None]


READERS = {"common": read_common, "movielens": read_movielens, "amazon": read_amazon}


def write_common(directory: Path, raw: RawInteractions, items: dict[str, Item]) -> None:
    """Write the common format (gzip), e.g. for the synthetic catalogue."""
    directory.mkdir(parents=True, exist_ok=True)
    with gzip.open(directory / "interactions.csv.gz", "wt", encoding="utf-8", newline="") as fh:
        fh.write("user_id,item_id,timestamp\n")
        for u, i, t in zip(raw.users, raw.items, raw.timestamps, strict=True):
            fh.write(f"{u},{i},{int(t)}\n")
    with gzip.open(directory / "items.jsonl.gz", "wt", encoding="utf-8") as fh:
        for item in items.values():
            fh.write(json.dumps(item.to_json()) + "\n")
