"""Own data in the common format: ISO-8601 timestamps, repeated item ids, a file where a folder is expected."""

import json
import subprocess
import sys

import pytest
from semrec.errors import DataError
from semrec_worker.data import DataConfig, load_dataset


def write_shop(directory, timestamps, items_lines=None):
    """Two users x 4 events; `timestamps` gives each event's timestamp text (per user, file order)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["user_id,item_id,timestamp"]
    for user, items in (("ann", "abcd"), ("bob", "dcba")):
        rows += [f"{user},{item},{stamp}" for item, stamp in zip(items, timestamps, strict=True)]
    (directory / "interactions.csv").write_text("\n".join(rows) + "\n")
    lines = items_lines or [json.dumps({"item_id": i, "title": f"title {i}"}) for i in "abcd"]
    (directory / "items.jsonl").write_text("\n".join(lines) + "\n")
    return directory


def load(path, **settings):
    return load_dataset(DataConfig(data=str(path), kcore=0, **settings))


def item_order(dataset, user):
    return [dataset.item_ids[i - 1] for i in dataset.sequences[dataset.user_ids.index(user)]]


def test_iso_8601_timestamps_order_events_like_unix_seconds(tmp_path):
    # written out of order: the third row is the earliest, the first the latest
    iso = ["2024-05-03T10:00:00Z", "2024-05-02", "2024-05-01T23:59:59+00:00", "2024-05-02T12:00:00"]
    unix = ["1714730400", "1714608000", "1714607999", "1714651200"]
    by_iso, by_unix = load(write_shop(tmp_path / "iso", iso)), load(write_shop(tmp_path / "unix", unix))
    assert item_order(by_iso, "ann") == ["c", "b", "d", "a"]
    assert by_iso.fingerprint == by_unix.fingerprint


def test_a_timestamp_that_is_neither_number_nor_date_names_file_and_line(tmp_path):
    folder = write_shop(tmp_path / "bad", ["1", "2", "yesterday", "4"])
    with pytest.raises(DataError, match=r"interactions.csv:4: timestamp 'yesterday' is neither a number nor an ISO-8601"):
        load(folder)


def test_repeated_item_ids_warn_with_a_count_and_the_last_line_wins(tmp_path, capsys):
    lines = [json.dumps({"item_id": i, "title": f"title {i}"}) for i in "abcd"]
    lines += [json.dumps({"item_id": "b", "title": "second b"}), json.dumps({"item_id": "c", "title": "second c"}),
              json.dumps({"item_id": "b", "title": "third b"})]  # fmt: skip
    dataset = load(write_shop(tmp_path / "dup", ["1", "2", "3", "4"], lines))
    err = capsys.readouterr().err
    assert "items.jsonl: 2 item id(s) appear more than once (the last line of each wins)" in err
    assert "'b' again at line 5" in err
    assert dataset.items[dataset.item_ids.index("b")].title == "third b"
    load(write_shop(tmp_path / "clean", ["1", "2", "3", "4"]))
    assert "appear more than once" not in capsys.readouterr().err


def test_a_data_file_stands_for_its_folder(tmp_path):
    folder = write_shop(tmp_path / "shop", ["1", "2", "3", "4"])
    expected = load(folder).fingerprint
    assert load(folder / "interactions.csv").fingerprint == expected
    assert load(folder / "items.jsonl").fingerprint == expected
    (folder / "notes.txt").write_text("hello\n")
    with pytest.raises(DataError, match="notes.txt: expected a dataset folder"):
        load(folder / "notes.txt")


def test_cli_reads_a_file_path_and_exits_2_on_bad_input(tmp_path):
    folder = write_shop(tmp_path / "shop", ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"])

    def stats(path):
        return subprocess.run([sys.executable, "-m", "semrec.cli", "data", "stats", "--data", str(path), "--kcore", "0",
                               "--output-format", "json"], capture_output=True, text=True)  # fmt: skip

    ok = stats(folder / "interactions.csv")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["after_kcore"]["interactions"] == 8
    (folder / "notes.txt").write_text("hello\n")
    bad = stats(folder / "notes.txt")
    assert bad.returncode == 2 and "expected a dataset folder" in bad.stderr and "Traceback" not in bad.stderr
    broken = write_shop(tmp_path / "broken", ["1", "2", "soon", "4"])
    bad = stats(broken)
    assert bad.returncode == 2 and "interactions.csv:4" in bad.stderr and "ISO-8601" in bad.stderr
