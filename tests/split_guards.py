"""Test helper: a dataset wrapper that fails on any read of the test split (tuning runs must never read it)."""


class NoTestSplit:
    """Wraps a dataset so that any read of the test split (its cases, or counts up to it) fails."""

    def __init__(self, dataset):
        self._dataset = dataset
        self.reads: list[str] = []

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def split(self, which):
        self.reads.append(which)
        if which == "test":
            raise AssertionError("the test split was read")
        return self._dataset.split(which)

    def item_counts(self, which="train"):
        if which == "test":
            raise AssertionError("test-split counts were read")
        return self._dataset.item_counts(which)
