"""LLMSeqPrompt: fine-tune a causal LM (LoRA) to complete a session's item names with the next item's name,
then turn what it generates into a ranking over the catalogue.

Harte et al., "Leveraging Large Language Models for Sequential Recommendation" (RecSys'23), section 3.2 (the
paper numbers no equations). Training pairs: prompt = the names of a session's items but the last, completion =
the name of the next one; the LM is fine-tuned on the completion tokens only,

    L = - sum_{pairs} sum_{j} log p(c_j | prompt, c_<j)           (c = completion tokens, then EOS)

(the paper fine-tunes OpenAI's model through its API; here LoRA on the q/k/v/o/gate/up/down projections of
SmolLM2-135M, the base weights frozen). At inference the tuned LM writes `num_generations` names for a session
(beam search or nucleus sampling); each name n is mapped to the catalogue item closest in text embedding,

    item(n) = argmax_j cos(enc(n), enc(name_j)),

which also resolves hallucinated names. Duplicates are the paper's confidence proxy: items are ranked by how
many generations map to them, then by the rank of their first generation (beam order / sample order). Items no
generation maps to come after, tied (the paper recommends only the generated list), or with `backfill=
"similarity"` by cosine to the mean embedding of the generated names.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from semrec_worker.core.lora import add_lora
from semrec_worker.core.runtime import autocast, default_device
from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.data.text import item_name
from semrec_worker.methods.llmseqprompt.settings import PROMPT_HEAD, PROMPT_TAIL, LLMSeqPromptSettings
from semrec_worker.training.finite import ensure_finite_loss

IGNORE = -100


def catalogue_names(dataset: SequenceDataset, settings: LLMSeqPromptSettings) -> list[str]:
    """Row i = the name of item index i + 1."""
    return [item_name(item, settings.name_max_chars) for item in dataset.items]


def prompt_text(names: Sequence[str]) -> str:
    return PROMPT_HEAD + "\n".join(f"- {name}" for name in names) + PROMPT_TAIL


def completion_text(name: str) -> str:
    return " " + name


def training_pairs(dataset: SequenceDataset, history_items: int) -> list[tuple[np.ndarray, int]]:
    """(history, next item) for every position of every training sequence (never a validation or test target)."""
    pairs = []
    for sequence in dataset.train_sequences():
        for t in range(1, len(sequence)):
            pairs.append((sequence[max(0, t - history_items) : t], int(sequence[t])))
    return pairs


@dataclass
class PromptCodec:
    """Prompts and completions as LM token ids (the prompt cut from the left to `max_prompt_tokens`)."""

    tokenizer: object
    names: list[str]
    settings: LLMSeqPromptSettings

    def prompt_ids(self, history: np.ndarray) -> list[int]:
        names = [self.names[int(i) - 1] for i in history[-self.settings.history_items :]]
        ids = self.tokenizer(prompt_text(names), add_special_tokens=False)["input_ids"]
        return ids[-self.settings.max_prompt_tokens :]

    def completion_ids(self, item: int) -> list[int]:
        ids = self.tokenizer(completion_text(self.names[item - 1]), add_special_tokens=False)["input_ids"]
        return ids[: self.settings.max_new_tokens] + [self.tokenizer.eos_token_id]

    def training_batch(self, pairs: Sequence[tuple[np.ndarray, int]]) -> dict[str, torch.Tensor]:
        """Right-padded input ids, attention mask and labels (-100 on the prompt and the padding)."""
        rows = [(self.prompt_ids(h), self.completion_ids(t)) for h, t in pairs]
        length = max(len(p) + len(c) for p, c in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), length), pad, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for row, (p, c) in enumerate(rows):
            ids[row, : len(p) + len(c)] = torch.as_tensor(p + c)
            labels[row, len(p) : len(p) + len(c)] = torch.as_tensor(c)
            mask[row, : len(p) + len(c)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def generation_batch(self, histories: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Left-padded prompts (generation continues from the last column)."""
        rows = [self.prompt_ids(h) for h in histories]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for row, r in enumerate(rows):
            ids[row, length - len(r) :] = torch.as_tensor(r)
            mask[row, length - len(r) :] = 1
        return {"input_ids": ids, "attention_mask": mask}


def with_lora(lm_model, settings: LLMSeqPromptSettings):
    torch.manual_seed(settings.seed)
    return add_lora(lm_model, settings.lora_r, settings.lora_alpha, settings.lora_dropout)


@dataclass
class FineTuneReport:
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    pairs_seen: int = 0
    wall_s: float = 0.0
    cut_short: bool = False


def fine_tune(model, codec: PromptCodec, pairs: list[tuple[np.ndarray, int]], settings: LLMSeqPromptSettings,
              progress: bool = True) -> FineTuneReport:
    """LoRA fine-tuning on the completion tokens (the loss above); stops at `max_steps` or the time budget."""
    from tqdm.auto import tqdm

    report = FineTuneReport()
    if settings.max_steps == 0 or not pairs:
        return report
    order = list(range(len(pairs)))
    rng = random.Random(settings.seed)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    device = default_device()
    start = time.perf_counter()
    budget_s = settings.max_train_minutes * 60 if settings.max_train_minutes is not None else math.inf
    model.train()
    bar = tqdm(total=settings.max_steps, desc="LLMSeqPrompt LoRA", disable=not progress)
    position = len(order)
    while report.steps < settings.max_steps:
        if position + settings.batch_size > len(order):
            rng.shuffle(order)
            position = 0
        batch = [pairs[i] for i in order[position : position + settings.batch_size]]
        position += settings.batch_size
        inputs = {k: v.to(device) for k, v in codec.training_batch(batch).items()}
        with autocast(device, settings.precision):
            loss = model(**inputs).loss
        ensure_finite_loss(loss, f"LLMSeqPrompt step {report.steps + 1}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        report.losses.append(round(float(loss.detach()), 5))
        report.steps += 1
        report.pairs_seen += len(batch)
        bar.update(1)
        bar.set_postfix(loss=f"{report.losses[-1]:.3f}")
        if time.perf_counter() - start > budget_s:
            report.cut_short = report.steps < settings.max_steps
            break
    bar.close()
    model.eval()
    report.wall_s = round(time.perf_counter() - start, 2)
    return report


def rank_scores(mapped: Sequence[int], n_items: int, backfill: np.ndarray | None = None) -> np.ndarray:
    """Scores over item indices 0..n (0 = padding, -inf): generated items by count, then first position;
    the rest below every generated one, tied or ordered by `backfill` (values in [-1, 1])."""
    scores = np.full(n_items + 1, -4.0, dtype=np.float32)
    if backfill is not None:
        scores[1:] = -3.0 + np.clip(backfill, -1, 1)
    k = len(mapped)
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for position, item in enumerate(mapped):
        counts[item] = counts.get(item, 0) + 1
        first.setdefault(item, position)
    for item, count in counts.items():
        scores[item] = count + (k - first[item]) / (k + 1)  # count first; earlier generations break ties
    scores[0] = -np.inf
    return scores


class LLMSeqPromptRecommender:
    """A `Recommender`: generate names for each history, map them to items, score as `rank_scores`.

    Generations are cached per history, so the full and the sampled protocol share one generation pass.
    """

    name = "llmseqprompt"

    def __init__(self, model, codec: PromptCodec, encoder, settings: LLMSeqPromptSettings) -> None:
        self.model = model
        self.codec = codec
        self.encoder = encoder
        self.settings = settings
        catalogue = np.asarray(encoder.embed(codec.names), dtype=np.float32)
        self.catalogue = catalogue / np.maximum(np.linalg.norm(catalogue, axis=1, keepdims=True), 1e-12)
        encoder.progress = False  # one small encoder call per generation batch from here on
        self.cache: dict[tuple[int, ...], np.ndarray] = {}
        self.generated: dict[tuple[int, ...], list[str]] = {}
        self.generation_s = 0.0
        self.generator = torch.Generator().manual_seed(settings.seed)

    @torch.inference_mode()
    def generate_names(self, histories: Sequence[np.ndarray]) -> list[list[str]]:
        s, tokenizer = self.settings, self.codec.tokenizer
        device = default_device()
        inputs = {k: v.to(device) for k, v in self.codec.generation_batch(histories).items()}
        options = {"max_new_tokens": s.max_new_tokens, "num_return_sequences": s.num_generations,
                   "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
        if s.decoding == "beam":
            options.update(do_sample=False, num_beams=s.num_generations, early_stopping=True)
        else:
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
            options.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, num_beams=1)
        with autocast(device, s.precision):
            output = self.model.generate(**inputs, **options)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        names = [t.split("\n")[0].strip() or "?" for t in texts]
        return [names[i * s.num_generations : (i + 1) * s.num_generations] for i in range(len(histories))]

    def map_names(self, names: Sequence[str]) -> tuple[list[int], np.ndarray]:
        """Each name's closest catalogue item (index 1..n), and the names' embeddings (unit rows)."""
        vectors = np.asarray(self.encoder.embed(list(names)), dtype=np.float32)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return [int(j) + 1 for j in (vectors @ self.catalogue.T).argmax(1)], vectors

    def _scores_for(self, histories: Sequence[np.ndarray]) -> None:
        todo = list({tuple(int(i) for i in h): h for h in histories if tuple(int(i) for i in h) not in self.cache}.items())
        start = time.perf_counter()
        size, k = self.settings.generation_batch_size, self.settings.num_generations
        for lo in range(0, len(todo), size):
            chunk = todo[lo : lo + size]
            generated = self.generate_names([h for _, h in chunk])
            mapped, vectors = self.map_names([name for names in generated for name in names])  # one encoder call
            for row, ((key, _), names) in enumerate(zip(chunk, generated, strict=True)):
                backfill = None
                if self.settings.backfill == "similarity":
                    centre = vectors[row * k : (row + 1) * k].mean(0)
                    backfill = self.catalogue @ (centre / max(float(np.linalg.norm(centre)), 1e-12))
                self.generated[key] = list(names)
                self.cache[key] = rank_scores(mapped[row * k : (row + 1) * k], len(self.codec.names), backfill)
        self.generation_s += time.perf_counter() - start

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        self._scores_for(histories)
        return torch.as_tensor(np.stack([self.cache[tuple(int(i) for i in h)] for h in histories]))
