"""Tuning runs: a run that never reads the test split, and training-sequence augmentation."""

import json

import numpy as np
import pytest
from semrec_worker.training import SeqRecConfig, train_seqrec
from semrec_worker.training.data import WindowBatches, augmented, training_windows
from split_guards import NoTestSplit

SMALL = dict(dim=16, max_len=10, batch_size=64, lr=5e-3, threads=1, dropout=0.0, epochs=2)


def test_no_evaluate_test_reads_only_training_and_validation(tmp_path, tiny_synthetic):
    guarded = NoTestSplit(tiny_synthetic)
    out = tmp_path / "run"
    result = train_seqrec(SeqRecConfig(data="synthetic", out=out, backbone="sasrec", loss="full_ce",
                                       evaluate_test=False, **SMALL), dataset=guarded)  # fmt: skip
    assert "valid" in guarded.reads and "test" not in guarded.reads
    assert result.runs == [] and result.best_epoch in (1, 2)
    assert not (out / "results.json").exists() and not (out / "test_ranks.npz").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] == [] and metrics["test_evaluated"] is False
    assert metrics["epochs"][result.best_epoch - 1]["valid"]["ndcg@10"] == pytest.approx(result.best_valid)
    assert (out / "model.pt").exists()  # the chosen cell is evaluated later from its saved model
    # the same trainer with the default reads the test split
    with pytest.raises(AssertionError, match="test split was read"):
        train_seqrec(SeqRecConfig(data="synthetic", out=tmp_path / "full", backbone="sasrec", **SMALL), dataset=guarded)


def test_reverse_adds_each_training_sequence_reversed():
    seqs = [np.array([1, 2, 3, 4]), np.array([5]), np.array([6, 7])]
    assert [s.tolist() for s in augmented(seqs, "none")] == [[1, 2, 3, 4], [5], [6, 7]]
    out = augmented(seqs, "reverse")
    assert [s.tolist() for s in out] == [[1, 2, 3, 4], [5], [6, 7], [4, 3, 2, 1], [7, 6]]
    # each reversed window predicts the item before each position: the pairs (4 -> 3), (3 -> 2), (2 -> 1)
    pairs = {(int(w[i]), int(w[i + 1])) for w in training_windows(out[3:], max_len=10) for i in range(len(w) - 1)}
    assert pairs == {(4, 3), (3, 2), (2, 1), (7, 6)}
    assert seqs[0].tolist() == [1, 2, 3, 4]  # the inputs are not reversed in place
    with pytest.raises(ValueError, match="unknown augmentation"):
        augmented(seqs, "shuffle")


def test_reverse_trains_on_no_validation_or_test_item(tiny_synthetic):
    train = tiny_synthetic.train_sequences()
    sequences = augmented(train, "reverse")
    kept = [seq for seq in train if len(seq) >= 2]
    assert len(sequences) == len(train) + len(kept)
    assert all(np.array_equal(a, b[::-1]) for a, b in zip(sequences[len(train):], kept, strict=True))
    assert WindowBatches(sequences, 10, 64, 0).n_targets == 2 * WindowBatches(train, 10, 64, 0).n_targets
    batches = WindowBatches(sequences, max_len=1000, batch_size=64, seed=0)  # one window per sequence
    # item occurrences over every training window: exactly twice the training part's counts, so no
    # validation or test occurrence of an item reached training
    seen = np.bincount(batches.padded[batches.padded > 0].numpy(), minlength=tiny_synthetic.n_items + 1)
    counts = np.bincount(np.concatenate(kept), minlength=tiny_synthetic.n_items + 1)
    assert np.array_equal(seen, 2 * counts)
    assert counts.sum() < sum(len(s) for s in tiny_synthetic.sequences)


def test_augment_is_a_saved_setting(tmp_path, tiny_synthetic):
    out = tmp_path / "run"
    train_seqrec(SeqRecConfig(data="synthetic", out=out, backbone="gru4rec", augment="reverse", evaluate_test=False,
                              **SMALL), dataset=tiny_synthetic)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    forward = WindowBatches(tiny_synthetic.train_sequences(), 10, 64, 0)
    assert metrics["train_targets"] == 2 * forward.n_targets
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["optimisation"]["augment"] == "reverse"
    assert saved["config"]["evaluation"]["evaluate_test"] is False
