"""How much of a seqrec run's validation top 10 its users already have, and what fixed history biases would do.

    python tools/history_bias_diagnostics.py RUN_DIR [--biases=-0.5:0,-1:-2] [--threads 1]

Prints, on the validation split (full ranking, history kept): the share of cases whose top 10 holds the most
recent history item, and the other history items per case. For a run trained with `--history-bias`, and for
each `b:b_last` pair of `--biases` (b_last ignored without `learned_last`), also the validation NDCG@10 /
Recall@10 with the biases fixed at those values and the training cross-entropy with the encoder in eval mode
(no dropout) over one pass of the training windows, beside the learned values.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from semrec_worker.data import load_dataset
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.export.onnx import load_run_encoder
from semrec_worker.losses import build_loss
from semrec_worker.training.data import WindowBatches
from semrec_worker.training.recommender import SeqRecRecommender
from semrec_worker.training.trainer import history_shift


def history_in_top10(recommender: SeqRecRecommender, histories: list[np.ndarray], max_len: int) -> tuple[float, float]:
    last = other = 0
    for lo in range(0, len(histories), 512):
        chunk = histories[lo : lo + 512]
        top = recommender.score(chunk).topk(10, dim=1).indices.numpy()
        for history, items in zip(chunk, top, strict=True):
            seen = set(history[-max_len:].tolist())
            last += int(history[-1] in items)
            other += sum(1 for i in items if i in seen and i != history[-1])
    return last / len(histories), other / len(histories)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--biases", default="0:0,-0.5:0,-1:0,-0.5:-1")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder, config, _, metrics = load_run_encoder(args.run)
    dataset = load_dataset(config.dataset)
    recommender = SeqRecRecommender(encoder, metrics["model"]["similarity"])
    histories, _ = dataset.split("valid")
    last, other = history_in_top10(recommender, histories, config.max_len)
    print(f"{args.run}: validation top 10 holds the last history item in {last:.3f} of the cases, "
          f"other history items {other:.3f} per case")
    if encoder.history_bias is None:
        return
    loss_fn = build_loss(config.loss, config.temperature)
    batches = WindowBatches(dataset.train_sequences(), config.max_len, config.batch_size, config.seed)

    def set_biases(b: float, b_last: float) -> None:
        with torch.no_grad():
            encoder.history_bias.fill_(b)
            if encoder.last_item_bias is not None:
                encoder.last_item_bias.fill_(b_last)

    def train_ce() -> float:
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in batches.epoch(1, 0, 1):
                hidden, targets = encoder.training_pairs(batch.windows, batch.noise)
                shift = history_shift(encoder, batch.windows, batch.noise)
                total += float(loss_fn(hidden, targets, encoder.item_embedding.weight, reduction="sum", history=shift))
                count += len(targets)
        return total / count

    learned = (float(encoder.history_bias.detach()),
               float(encoder.last_item_bias.detach()) if encoder.last_item_bias is not None else 0.0)
    pairs = [learned] + [tuple(float(v) for v in pair.split(":")) for pair in args.biases.split(",")]
    for i, (b, b_last) in enumerate(pairs):
        set_biases(b, b_last)
        valid = evaluate(recommender, dataset, "valid", EvalSettings(protocol="full")).metrics
        label = " (learned)" if i == 0 else ""
        print(f"b={b:+.3f} b_last={b_last:+.3f}{label}: train CE, eval mode {train_ce():.4f} | valid NDCG@10 "
              f"{valid['ndcg@10']:.4f} Recall@10 {valid['recall@10']:.4f}")
        if i == 0:
            last, other = history_in_top10(recommender, histories, config.max_len)
            print(f"  at the learned values: last item in the top 10 of {last:.3f} of the cases, other history "
                  f"items {other:.3f} per case")


if __name__ == "__main__":
    main()
