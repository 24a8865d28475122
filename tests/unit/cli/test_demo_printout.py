"""`semrec demo` prints the history and the recommended items with their titles, not only ids."""

from semrec_worker.serving_demo import describe_answer, run_titles


def test_the_demo_answer_is_printed_with_titles(tmp_path):
    answer = {"version": "1", "fallback": False, "items": [{"item_id": "i9", "score": 0.8125},
                                                          {"item_id": "i4", "score": 0.5}]}  # fmt: skip
    text = describe_answer(["i1", "i2"], answer, {"i1": "Blue Kettle", "i9": "Green Teapot", "i4": None})
    assert text.splitlines() == ["history:", "  i1  Blue Kettle", "  i2", "recommended (bundle v1):",
                                 "   1. i9  0.812  Green Teapot", "   2. i4  0.500"]  # fmt: skip
    assert run_titles(tmp_path) == {}  # a directory that is no run: ids only, no failure
