"""`semrec bench said`: stage-1 throughput of the SAID trainer vs a plain fp32 Hugging Face loop.

Both loops train prefixes for the same items with the same batch size and the same frozen LM object:
- plain: items in dataset order, inputs padded to the batch's longest caption with an attention mask,
  `model(inputs_embeds=..., labels=...)` in fp32 (LM head over every position), a dense Adam table;
- SAID trainer: `SAIDTrainer.step` (length-bucketed batches, bf16 autocast, right padding without a mask,
  LM head on caption positions only, sparse row updates).
Steps of the two loops alternate, so a machine shared with other jobs slows both alike.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from semrec.cli_builder import echo
from semrec.results import RunResult, write_results

from semrec_worker.data.dataset import load_dataset
from semrec_worker.lm import load_language_model
from semrec_worker.methods.said.batches import length_buckets
from semrec_worker.methods.said.trainer import SAIDTrainer


class PlainLoop:
    """What one would write first: fp32, padded batches with attention mask and -100 labels."""

    def __init__(self, trainer: SAIDTrainer) -> None:
        self.trainer = trainer
        width = trainer.lm.hidden_size
        k = trainer.config.virtual_tokens
        features = trainer.projector.features if hasattr(trainer.projector, "features") else None
        init = features.repeat(1, k) if features is not None else torch.zeros(trainer.dataset.n_items, k * width)
        self.table = torch.nn.Parameter(init.clone())
        self.optimizer = torch.optim.Adam([self.table], lr=trainer.config.lr_rows)

    def step(self, rows: np.ndarray) -> float:
        t = self.trainer
        captions, mask = t.captions.batch(rows.tolist(), t.device)
        batch, k = len(rows), t.config.virtual_tokens
        prefix = self.table[torch.as_tensor(rows)].view(batch, k, -1)
        instruction = t.instruction.expand(batch, -1, -1)
        embeds = torch.cat([instruction, prefix, t.model.get_input_embeddings()(captions)], dim=1)
        lead = instruction.shape[1] + k
        attention = torch.cat([torch.ones(batch, lead, dtype=torch.long), mask.long()], dim=1)
        labels = torch.cat([torch.full((batch, lead), -100), captions.masked_fill(~mask, -100)], dim=1)
        loss = t.model(inputs_embeds=embeds, attention_mask=attention, labels=labels).loss
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def run_bench(config) -> list[RunResult]:
    dataset = load_dataset(config)
    lm = load_language_model(config.llm, "float32")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SAIDTrainer(config.model_copy(update={"device": "cpu"}), Path(tmp), dataset, lm)
    plain = PlainLoop(trainer)
    rows = np.arange(min(config.bench_items, dataset.n_items))
    bs = trainer.batch_size
    plain_batches = [rows[i : i + bs] for i in range(0, len(rows), bs)]
    said_batches = length_buckets(trainer.captions.lengths, rows, bs, config.seed)
    for i in range(config.warmup_steps):
        plain.step(plain_batches[i % len(plain_batches)])
        trainer.step(said_batches[i % len(said_batches)])
    times = {"plain": 0.0, "said": 0.0}
    for plain_rows, said_rows in zip(plain_batches, said_batches, strict=True):
        start = time.perf_counter()
        plain.step(plain_rows)
        times["plain"] += time.perf_counter() - start
        start = time.perf_counter()
        trainer.step(said_rows)
        times["said"] += time.perf_counter() - start
    n = len(rows)
    rates = {name: n / seconds for name, seconds in times.items()}
    speedup = rates["said"] / rates["plain"]
    settings = {
        "lm": lm.name, "items": n, "batch_size": bs, "threads": torch.get_num_threads(),
        "virtual_tokens": config.virtual_tokens, "instruction": config.instruction,
        "max_caption_tokens": config.max_caption_tokens, "projector": trainer.kind,
        "mean_caption_tokens": float(trainer.captions.lengths[rows].mean()), "cpu": platform.processor(),
        "load_average_1m": _load_average(),
    }
    runs = [
        RunResult(dataset=dataset.name, method="said-trainer", protocol="stage1-throughput",
                  metrics={"items_per_s": round(rates["said"], 3), "speedup_vs_plain": round(speedup, 3)},
                  wall_s=round(times["said"], 2), config={**settings, "precision": trainer.precision}),
        RunResult(dataset=dataset.name, method="hf-fp32-loop", protocol="stage1-throughput",
                  metrics={"items_per_s": round(rates["plain"], 3)}, wall_s=round(times["plain"], 2),
                  config={**settings, "precision": "fp32"}),
    ]
    write_results(config.results, runs)
    echo(
        f"[bench said] {dataset.name}, {lm.name}, {n} items, batch {bs}, {torch.get_num_threads()} threads: "
        f"plain fp32 HF loop {rates['plain']:.2f} items/s, SAID trainer {rates['said']:.2f} items/s "
        f"({speedup:.2f}x) -> {config.results}"
    )
    return runs


def _load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return None
