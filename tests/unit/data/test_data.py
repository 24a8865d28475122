"""Readers, k-core, splits, captions and the synthetic generator."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
from semrec.errors import DataError
from semrec_worker.data import DataConfig, load_dataset
from semrec_worker.data.dataset import kcore_mask
from semrec_worker.data.records import Item
from semrec_worker.data.synthetic import CATEGORIES, COMPLEMENT, SyntheticConfig, generate
from semrec_worker.data.text import caption


def write_common(tmp_path, rows, items, header="user_id,item_id,timestamp"):
    with gzip.open(tmp_path / "interactions.csv.gz", "wt") as fh:
        fh.write(header + "\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    with gzip.open(tmp_path / "items.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps(it) + "\n" for it in items))
    return tmp_path


def test_kcore_is_iterated():
    # item c has 2 rows; dropping it leaves user 2 with 1 row, which must then go too
    users = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    items = np.array([0, 1, 2, 0, 1, 2, 0, 3])
    keep = kcore_mask(users, items, 2)
    assert keep.tolist() == [True] * 6 + [False, False]


def test_common_format_sorted_chronologically_and_split(tmp_path):
    rows = [("u1", "b", 20), ("u1", "a", 10), ("u1", "c", 30), ("u1", "d", 30), ("u2", "a", 5), ("u2", "b", 6),
            ("u2", "c", 7)]  # fmt: skip
    items = [{"item_id": x, "title": x.upper()} for x in "abcd"]
    ds = load_dataset(DataConfig(data=str(write_common(tmp_path, rows, items)), kcore=0))
    idx = ds.item_index()
    assert ds.user_ids == ["u1", "u2"]
    # equal timestamps keep file order (c before d)
    assert ds.sequences[0].tolist() == [idx["a"], idx["b"], idx["c"], idx["d"]]
    hist, targets = ds.split("test")
    assert targets.tolist() == [idx["d"], idx["c"]] and hist[0].tolist() == [idx["a"], idx["b"], idx["c"]]
    _, valid_targets = ds.split("valid")
    assert valid_targets.tolist() == [idx["c"], idx["b"]]
    assert ds.train_sequences()[1].tolist() == [idx["a"]]


def test_truncation_keeps_the_most_recent(tmp_path):
    rows = [("u1", x, t) for t, x in enumerate("abcdef")]
    ds = load_dataset(DataConfig(data=str(write_common(tmp_path, rows, [{"item_id": x} for x in "abcdef"])),
                                 kcore=0, history_cap=3))  # fmt: skip
    assert [ds.item_ids[i - 1] for i in ds.sequences[0]] == ["d", "e", "f"]


def test_movielens_formats(tmp_path):
    ml1m = tmp_path / "ml1m"
    ml1m.mkdir()
    (ml1m / "movies.dat").write_bytes("1::Toy Story (1995)::Animation|Comedy\n2::Amélie (2001)::Romance\n".encode("latin-1"))
    (ml1m / "ratings.dat").write_text("1::1::5::100\n1::2::4::50\n1::1::3::200\n")
    ds = load_dataset(DataConfig(data=str(ml1m), kcore=0))
    assert ds.items[ds.item_index()["2"] - 1].title == "Amélie (2001)"
    assert [ds.item_ids[i - 1] for i in ds.sequences[0]] == ["2", "1", "1"]
    ml100k = tmp_path / "ml100k"
    ml100k.mkdir()
    flags = ["0"] * 19
    flags[3] = "1"
    (ml100k / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n")
    (ml100k / "u.data").write_text("7\t1\t5\t10\n7\t1\t4\t11\n7\t1\t4\t12\n")
    ds = load_dataset(DataConfig(data=str(ml100k), kcore=0))
    assert ds.items[0].categories == ["Animation"] and ds.items[0].extra["year"] == 1995


def test_amazon_2018_format(tmp_path):
    (tmp_path / "Industrial.csv").write_text("A1,u1,5.0,100\nA2,u1,4.0,200\nA3,u1,4.0,300\nNOTITLE,u1,1,400\n")
    with gzip.open(tmp_path / "meta_Industrial.json.gz", "wt") as fh:
        fh.write(json.dumps({"asin": "A1", "title": "Beaker", "brand": "Pyrex", "category": ["Lab", "Glass"]}) + "\n")
        fh.write(json.dumps({"asin": "A2", "title": "Flask", "category": []}) + "\n")
        fh.write(str({"asin": "A3", "title": "Pipette", "brand": "Eppendorf"}) + "\n")  # 2014-style literal
        fh.write(json.dumps({"asin": "NOTITLE"}) + "\n")
    ds = load_dataset(DataConfig(data=str(tmp_path), kcore=0, drop_unknown_items=True))
    assert ds.item_ids == ["A1", "A2", "A3"]
    assert caption(ds.items[0]) == "title: Beaker, brand: Pyrex, category: Lab > Glass"
    with pytest.raises(DataError, match="NOTITLE"):
        load_dataset(DataConfig(data=str(tmp_path), kcore=0))


def test_captions_skip_missing_attributes_and_cap_length():
    assert caption(Item("x", "Red Tent", None, ["Camping"])) == "title: Red Tent, category: Camping"
    long = Item("y", " ".join(["word"] * 100))
    assert len(caption(long, max_tokens=10).split()) == 10
    assert caption(Item("z")) == "item: z"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"interactions.csv": "user,item_id,timestamp\nu,a,1\n"}, "interactions.csv:1: missing column(s) user_id"),
        ({"interactions.csv": "user_id,item_id,timestamp\nu,a,1\nu,zzz,2\n"}, "interactions.csv:3: item id 'zzz'"),
        ({"interactions.csv": ""}, "interactions.csv: empty file"),
        ({"interactions.csv": b"user_id,item_id,timestamp\nu,a,1\nu,\xff\xfe,2\n"}, "interactions.csv:3: not valid UTF-8"),
        ({"interactions.csv": "user_id,item_id,timestamp\nu,a,yesterday\n"}, "interactions.csv:2: timestamp"),
        ({"items.jsonl": '{"item_id": "a"}\n{broken\n'}, "items.jsonl:2: invalid JSON"),
    ],
)
def test_bad_data_exits_2_naming_file_and_line(tmp_path, files, message):
    defaults = {"interactions.csv": "user_id,item_id,timestamp\nu,a,1\n", "items.jsonl": '{"item_id": "a"}\n'}
    for name, content in {**defaults, **files}.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = subprocess.run(
        [sys.executable, "-m", "semrec.cli", "data", "stats", "--data", str(tmp_path), "--kcore", "0"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_folder_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "semrec.cli", "data", "stats", "--data", "/nonexistent/x"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "dataset folder not found" in proc.stderr


def test_synthetic_is_seeded_and_text_predicts_behaviour():
    cfg = SyntheticConfig(users=300, items=120, seed=4)
    raw_a, items_a = generate(cfg)
    raw_b, _ = generate(cfg)
    assert np.array_equal(raw_a.items, raw_b.items)
    assert not np.array_equal(generate(SyntheticConfig(users=300, items=120, seed=5))[0].items, raw_a.items)
    category = {i: it.categories[0] for i, it in items_a.items()}
    same_or_complement = total = 0
    for k in range(1, len(raw_a)):
        if raw_a.users[k] == raw_a.users[k - 1]:
            a, b = category[raw_a.items[k - 1]], category[raw_a.items[k]]
            same_or_complement += b in (a, COMPLEMENT[a])
            total += 1
    chance = 2 / len(CATEGORIES)
    assert same_or_complement / total > 4 * chance  # the text (category) predicts the next item
    assert all(it.brand and it.title and it.brand in it.title for it in items_a.values())


def test_synthetic_spec_errors_are_user_errors():
    from semrec.errors import UserError

    with pytest.raises(UserError):
        SyntheticConfig.from_spec("synthetic:users")
    with pytest.raises(Exception, match="users"):
        SyntheticConfig.from_spec("synthetic:users=-3")
