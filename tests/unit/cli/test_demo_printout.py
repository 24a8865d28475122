"""`semrec demo` prints the history and the recommended items with their titles, not only ids."""

from semrec_worker.serving_demo import describe_answer, run_titles


def test_the_demo_answer_is_printed_with_titles(tmp_path):
    answer = {"version": "1", "fallback": False, "items": [{"item_id": "i9", "score": 0.8125},
                                                          {"item_id": "i4", "score": 0.5}]}  # fmt: skip
    text = describe_answer(["i1", "i2"], answer, {"i1": "Blue Kettle", "i9": "Green Teapot", "i4": None})
    assert text.splitlines() == ["history:", "  i1  Blue Kettle", "  i2", "recommended (bundle v1):",
                                 "   1. i9  0.812  Green Teapot", "   2. i4  0.500"]  # fmt: skip
    assert run_titles(tmp_path) == {}  # a directory that is no run: ids only, no failure


def test_titles_come_from_the_runs_dataset(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"kind": "SeqRecConfig", "config": {
        "data": "synthetic:users=40,items=20,seed=3", "format": "auto"}}))  # fmt: skip
    titles = run_titles(tmp_path)
    assert len(titles) == 20 and all(isinstance(t, str) and t for t in titles.values())
