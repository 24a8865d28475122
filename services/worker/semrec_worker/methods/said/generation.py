"""Generation accuracy (SAID section 3.3, Figure 3): decode a caption from the item's prefix alone.

Word-level accuracy of a generated caption against the ground truth = words equal at the same position,
divided by the longer of the two word counts (so neither truncation nor rambling scores well);
1.0 means the caption was reproduced exactly.
"""

from __future__ import annotations

import torch
from torch import nn


def word_accuracy(reference: str, generated: str) -> float:
    ref, gen = reference.split(), generated.split()
    if not ref and not gen:
        return 1.0
    hits = sum(r == g for r, g in zip(ref, gen, strict=False))
    return hits / max(len(ref), len(gen))


@torch.no_grad()
def greedy_decode(
    lm: nn.Module, prefix: torch.Tensor, instruction: torch.Tensor, max_new_tokens: int, eos_id: int
) -> list[list[int]]:
    """Greedy continuation of [instruction; prefix] for each item (KV cache; stops at EOS)."""
    batch = prefix.shape[0]
    dtype = lm.get_input_embeddings().weight.dtype
    inputs = torch.cat([instruction.to(dtype).expand(batch, -1, -1), prefix.to(dtype)], dim=1)
    out = lm(inputs_embeds=inputs, use_cache=True)
    past = out.past_key_values
    tokens = out.logits[:, -1].argmax(-1)
    generated = [[] for _ in range(batch)]
    done = torch.zeros(batch, dtype=torch.bool, device=prefix.device)
    for _ in range(max_new_tokens):
        for i in range(batch):
            if not done[i] and int(tokens[i]) != eos_id:
                generated[i].append(int(tokens[i]))
        done |= tokens == eos_id
        if bool(done.all()):
            break
        out = lm(input_ids=tokens[:, None], past_key_values=past, use_cache=True)
        past = out.past_key_values
        tokens = out.logits[:, -1].argmax(-1)
    return generated


def generation_report(
    lm: nn.Module,
    tokenizer,
    projector: nn.Module,
    instruction: torch.Tensor,
    rows: list[int],
    references: list[str],
    max_new_tokens: int,
    batch_size: int = 64,
) -> dict:
    """Mean word accuracy, exact-match rate and the (reference, generated) pairs for `rows`."""
    device = instruction.device
    pairs = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        prefix = projector(torch.as_tensor(chunk, device=device))
        decoded = greedy_decode(lm, prefix, instruction, max_new_tokens, tokenizer.eos_token_id)
        for ids, ref in zip(decoded, references[start : start + batch_size], strict=True):
            pairs.append((ref, tokenizer.decode(ids, skip_special_tokens=True).strip()))
    scores = [word_accuracy(ref, gen) for ref, gen in pairs]
    return {
        "word_accuracy": sum(scores) / max(len(scores), 1),
        "exact": sum(ref == gen for ref, gen in pairs) / max(len(pairs), 1),
        "pairs": pairs,
    }
