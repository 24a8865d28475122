"""TSLRec: Liu et al., "A Practice-Friendly Two-Stage LLM-Enhanced Paradigm in Sequential Recommendation".

Written from the method's description (no reference code was available offline); the notation follows
the paper's three steps, numbered here (T1)-(T5) because the equation numbers could not be checked.

Pre-grouping. Item embeddings E^id of a pretrained ID-based SASRec are clustered by k-means into K
latent categories c(i) in {1..K}. A user u with training sequence S_u gets the normalised
category-frequency vector

    (T1)  y_u[k] = |{i in S_u : c(i) = k}| / |S_u|.

User-level SFT. The LM reads instruction tokens, then the user's items projected into the token space,
then "Response:"; the hidden state h_u of the last token is mapped to a distribution over groups:

    (T2)  x = [ emb(instruction) ; W_p e^id_{i_1} ; ... ; W_p e^id_{i_n} ; emb("Response:") ]
    (T3)  p_u = softmax(W_g h_u),       L_SFT = || p_u - y_u ||^2   (MSE),

trained with LoRA adapters on the LM plus W_p and W_g (the LM's own weights stay frozen).

Item augmentation. Each item alone goes through the tuned LM (a one-item "user"), giving its knowledge
embedding k_i = h_i and category distribution p_i = softmax(W_g h_i). A new backbone fuses them with a
randomly initialised ID embedding through a gate:

    (T4)  z_i = W_z [k_i ; p_i],        g_i = sigmoid(W_r [z_i ; e_i])
    (T5)  ê_i = g_i * z_i + (1 - g_i) * e_i

and is trained as usual for next-item prediction (`GatedFusionEmbedding` is its item-embedding layer).

Initialisation (not given in the paper, chosen so that the ID view is not drowned at the start; docs/tslrec.md):
W_z gives |z_i| ~ |e_i| ~ 1, W_r = 0 and its bias -3, so g_i = 0.047 and ê_i starts 95% e_i; pre-grouping
clusters the L2-normalised SASRec rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semrec_worker.core import lora
from semrec_worker.core.runtime import autocast, default_device
from semrec_worker.methods.tslrec.settings import INSTRUCTION, RESPONSE, TSLRecSettings
from semrec_worker.training.finite import ensure_finite_loss


def pre_group(item_vectors: np.ndarray, n_groups: int, seed: int = 0) -> np.ndarray:
    """k-means labels in 0..K-1 for each row of `item_vectors` (the pretrained SASRec item table)."""
    from sklearn.cluster import KMeans

    n_groups = min(n_groups, len(item_vectors))
    vectors = np.asarray(item_vectors, dtype=np.float64)
    # clustered by direction: the backbones score by cosine, and raw norms track popularity, not category
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return KMeans(n_clusters=n_groups, n_init=4, random_state=seed).fit_predict(unit).astype(np.int64)


def category_distributions(sequences: list[np.ndarray], labels: np.ndarray, n_groups: int) -> np.ndarray:
    """(T1): row u is the normalised histogram of group labels over user u's items (item indices are 1-based)."""
    out = np.zeros((len(sequences), n_groups), dtype=np.float32)
    for u, seq in enumerate(sequences):
        if len(seq):
            out[u] = np.bincount(labels[np.asarray(seq) - 1], minlength=n_groups)[:n_groups] / len(seq)
    return out


@dataclass
class PromptPieces:
    instruction_ids: torch.Tensor  # [n_instr]
    response_ids: torch.Tensor  # [n_resp]


def prompt_pieces(tokenizer, instruction: str = INSTRUCTION) -> PromptPieces:
    def ids(text: str) -> torch.Tensor:
        return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    return PromptPieces(ids(instruction), ids(RESPONSE))


class UserSFTModel(nn.Module):
    """(T2)-(T3): LM (with LoRA) reading projected item embeddings, predicting a group distribution."""

    def __init__(
        self, lm: nn.Module, tokenizer, id_dim: int, n_groups: int, instruction: str = INSTRUCTION
    ) -> None:
        super().__init__()
        self.lm = lm
        hidden = int(lm.config.hidden_size)
        self.project_items = nn.Linear(id_dim, hidden)  # W_p
        self.group_head = nn.Linear(hidden, n_groups)  # W_g
        pieces = prompt_pieces(tokenizer, instruction)
        self.register_buffer("instruction_ids", pieces.instruction_ids, persistent=False)
        self.register_buffer("response_ids", pieces.response_ids, persistent=False)

    def _token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def last_hidden(self, item_vectors: torch.Tensor, item_mask: torch.Tensor) -> torch.Tensor:
        """h_u for a batch: item_vectors [B, L, d_id] (right-padded), item_mask [B, L] bool."""
        batch, length, _ = item_vectors.shape
        instr = self._token_embeddings(self.instruction_ids).expand(batch, -1, -1)
        resp = self._token_embeddings(self.response_ids).expand(batch, -1, -1)
        items = self.project_items(item_vectors).to(instr.dtype)
        # Left-pad each row so "Response:" is always last: move the padding in front of the instruction.
        embeds = torch.cat([instr, items, resp], dim=1)
        ones_i = torch.ones(batch, instr.shape[1], dtype=torch.bool, device=embeds.device)
        ones_r = torch.ones(batch, resp.shape[1], dtype=torch.bool, device=embeds.device)
        mask = torch.cat([ones_i, item_mask, ones_r], dim=1)
        order = torch.argsort(mask.int(), dim=1, stable=True)  # padding (0) first, real tokens keep order
        embeds = embeds.gather(1, order.unsqueeze(-1).expand_as(embeds))
        mask = mask.gather(1, order)
        positions = (mask.long().cumsum(1) - 1).clamp(min=0)
        out = self.lm(
            inputs_embeds=embeds, attention_mask=mask.long(), position_ids=positions, output_hidden_states=True
        )
        return out.hidden_states[-1][:, -1].float()

    def forward(self, item_vectors: torch.Tensor, item_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.group_head(self.last_hidden(item_vectors, item_mask)), dim=-1)


def sft_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(T3): mean squared error between predicted and observed group distributions."""
    return ((predicted - target) ** 2).sum(dim=-1).mean()


def add_lora(lm: nn.Module, settings: TSLRecSettings) -> nn.Module:
    return lora.add_lora(lm, settings.lora_r, settings.lora_alpha, settings.lora_dropout)


def _history_batch(
    sequences: list[np.ndarray], id_vectors: torch.Tensor, max_history: int
) -> tuple[torch.Tensor, torch.Tensor]:
    recent = [np.asarray(s[-max_history:]) for s in sequences]
    length = max(1, max(len(s) for s in recent))
    index = torch.zeros(len(recent), length, dtype=torch.long)
    mask = torch.zeros(len(recent), length, dtype=torch.bool)
    for row, seq in enumerate(recent):
        index[row, : len(seq)] = torch.as_tensor(seq)
        mask[row, : len(seq)] = True
    return id_vectors[index], mask


def planned_sft_steps(sequences: list[np.ndarray], settings: TSLRecSettings) -> int:
    """Optimiser steps of the user SFT before any time budget: `sft_epochs` passes, capped by `sft_max_steps`."""
    users = sum(1 for s in sequences if len(s))
    total = math.ceil(users / settings.sft_batch_size) * settings.sft_epochs
    return total if settings.sft_max_steps is None else min(total, settings.sft_max_steps)


def train_user_sft(
    model: UserSFTModel,
    sequences: list[np.ndarray],
    targets: np.ndarray,
    id_vectors: torch.Tensor,
    settings: TSLRecSettings,
    progress: bool = True,
) -> list[float]:
    """User-level SFT; returns the loss of every step. Only LoRA, W_p and W_g receive gradients. With
    `sft_max_train_minutes` it stops after the step during which the budget ran out (fewer losses than planned)."""
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings.sft_lr)
    users = [u for u, s in enumerate(sequences) if len(s)]
    total = planned_sft_steps(sequences, settings)
    deadline = None if settings.sft_max_train_minutes is None else time.monotonic() + 60 * settings.sft_max_train_minutes
    losses: list[float] = []
    model.train()
    bar = tqdm(total=total, desc="TSLRec user SFT", disable=not progress)
    while len(losses) < total:
        order = torch.randperm(len(users), generator=generator).tolist()
        for lo in range(0, len(order), settings.sft_batch_size):
            if deadline is not None and losses and time.monotonic() >= deadline:
                total = len(losses)
            if len(losses) >= total:
                break
            batch = [users[i] for i in order[lo : lo + settings.sft_batch_size]]
            vectors, mask = _history_batch([sequences[u] for u in batch], id_vectors, settings.max_history)
            with autocast(default_device(), settings.precision):
                predicted = model(vectors, mask)
            loss = sft_loss(predicted, torch.as_tensor(targets[batch]))
            ensure_finite_loss(loss, f"TSLRec user SFT step {len(losses) + 1}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    bar.close()
    model.eval()
    return losses


@torch.inference_mode()
def item_knowledge(
    model: UserSFTModel, id_vectors: torch.Tensor, settings: TSLRecSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Each item alone through the tuned LM: knowledge embeddings k_i [n, d_lm] and distributions p_i [n, K].

    `id_vectors` has the padding row 0 first; the returned arrays are for items 1..n.
    """
    from tqdm.auto import tqdm

    n_items = id_vectors.shape[0] - 1
    knowledge, distributions = [], []
    starts = range(1, n_items + 1, settings.item_batch_size)
    for lo in tqdm(starts, desc="TSLRec item knowledge", unit="batch", disable=len(starts) < 2):
        hi = min(lo + settings.item_batch_size, n_items + 1)
        vectors = id_vectors[lo:hi].unsqueeze(1)
        mask = torch.ones(hi - lo, 1, dtype=torch.bool)
        with autocast(default_device(), settings.precision):
            hidden = model.last_hidden(vectors, mask)
        knowledge.append(hidden)
        distributions.append(torch.softmax(model.group_head(hidden), dim=-1))
    return torch.cat(knowledge).numpy(), torch.cat(distributions).numpy()


GATE_BIAS = -3.0  # sigmoid(-3) = 0.047: the fused rows start as 95% ID embedding


class GatedFusionEmbedding(nn.Module):
    """(T4)-(T5): item embedding layer of the augmented backbone.

    Fixed knowledge features [k_i ; p_i] (row 0 = padding) are projected to the model width and gated
    against a trainable, randomly initialised ID embedding. `weight` is the full fused item matrix
    [n_items + 1, dim], so the backbone scores all items with it.
    """

    part_name = "tslrec-gated-fusion"  # recorded in the run's config.json; `empty_gated_fusion` rebuilds it

    def __init__(self, knowledge: np.ndarray, distributions: np.ndarray, dim: int, seed: int = 0) -> None:
        super().__init__()
        features = np.concatenate([knowledge, distributions], axis=1).astype(np.float32)
        features = (features - features.mean(0)) / (features.std(0) + 1e-6)
        padded = np.concatenate([np.zeros((1, features.shape[1]), np.float32), features])
        self.register_buffer("features", torch.from_numpy(padded))
        # seeded apart from the global RNG, so a backbone on a reused stage 1 starts where a full run's does
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.id_embedding = nn.Parameter(torch.randn(len(padded), dim) * dim**-0.5)
            self.project = nn.Linear(features.shape[1], dim)  # W_z
            self.gate = nn.Linear(2 * dim, dim)  # W_r
            # W_z starts with rows of the ID embedding's scale (|z_i| ~ |e_i| ~ 1): with PyTorch's default init
            # the standardised features project to |z_i| ~ sqrt(dim / 3) (9.2 at dim 256) and drown the ID view
            nn.init.normal_(self.project.weight, std=(features.shape[1] * dim) ** -0.5)
        nn.init.zeros_(self.project.bias)
        # the gate starts near the ID view (g = sigmoid(GATE_BIAS) ~ 0.05) and learns how much knowledge to let in
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, GATE_BIAS)

    @property
    def weight(self) -> torch.Tensor:
        z = self.project(self.features)
        e = self.id_embedding
        g = torch.sigmoid(self.gate(torch.cat([z, e], dim=-1)))
        fused = g * z + (1 - g) * e
        return torch.cat([torch.zeros_like(fused[:1]), fused[1:]])  # padding row stays zero

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.weight[item_ids]


def empty_gated_fusion(state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> GatedFusionEmbedding:
    """A gated fusion layer shaped like a saved one (the fixed knowledge features are a buffer of the state
    dict, loaded after)."""
    rows, n_features = state[prefix + "features"].shape
    dim = state[prefix + "id_embedding"].shape[1]
    return GatedFusionEmbedding(np.zeros((rows - 1, n_features), np.float32), np.zeros((rows - 1, 0), np.float32), dim)
