"""`train_tslrec`: stage 1 (pre-grouping -> user-level SFT -> item knowledge, or a saved stage 1 reused),
then a backbone trained through the gated fusion item layer (`GatedFusionEmbedding`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from semrec.cli_builder import echo
from semrec.errors import UserError
from semrec.item_table import ItemTable

from semrec_worker.core.checks import require_existing
from semrec_worker.data.dataset import SequenceDataset, load_dataset
from semrec_worker.lm import load_language_model
from semrec_worker.methods.tslrec.model import (
    GatedFusionEmbedding,
    UserSFTModel,
    add_lora,
    category_distributions,
    item_knowledge,
    planned_sft_steps,
    pre_group,
    train_user_sft,
)
from semrec_worker.methods.tslrec.settings import KNOWLEDGE, STAGE1, TSLRecJobConfig
from semrec_worker.training.trainer import TrainResult, train_seqrec


def stage1_folder(path: Path) -> Path:
    return path / STAGE1 if (path / STAGE1 / KNOWLEDGE).exists() else path


def load_stage1(path: Path, item_ids: list[str]):
    """(knowledge, distributions, labels, table metadata) of a saved stage 1, rows in `item_ids` order."""
    folder = stage1_folder(path)
    if not (folder / KNOWLEDGE).exists():
        raise UserError(f"--stage1 {path}: no {KNOWLEDGE} (not a TSLRec run directory or its {STAGE1}/ folder)")
    table = ItemTable.load(folder / "item_table.npz")
    row = {item: i for i, item in enumerate(table.ids)}
    missing = [item for item in item_ids if item not in row]
    if missing:
        raise UserError(f"--stage1 {path}: built on another catalogue, {len(missing)} of this dataset's items "
                        f"are not in it (first: {missing[0]!r})")
    order = np.array([row[item] for item in item_ids])
    saved = np.load(folder / KNOWLEDGE)
    return saved["knowledge"][order], saved["distributions"][order], saved["labels"][order], table.metadata


def run_stage1(config: TSLRecJobConfig, dataset: SequenceDataset, stage1: Path):
    """Pre-grouping -> user-level SFT -> item knowledge, saved under `stage1`; returns (knowledge, distributions)."""
    assert config.tslrec.pretrained is not None
    settings = config.stage1_settings()
    pretrained = ItemTable.load(config.tslrec.pretrained)
    vectors, missing = pretrained.aligned(dataset.item_ids)
    if len(missing) == dataset.n_items:
        raise UserError(f"{config.tslrec.pretrained}: its item table shares no item with {dataset.name}")
    echo(f"TSLRec: {len(missing)} of {dataset.n_items} items have no pretrained embedding (zero rows)")

    labels = pre_group(vectors, settings.n_groups, settings.seed)
    n_groups = int(labels.max()) + 1
    train = dataset.train_sequences()
    targets = category_distributions(train, labels, n_groups)
    echo(f"pre-grouping: {n_groups} k-means groups over {dataset.n_items} items")

    lm = load_language_model(config.tslrec.llm)
    for parameter in lm.model.parameters():
        parameter.requires_grad_(False)
    sft = UserSFTModel(add_lora(lm.model, settings), lm.tokenizer, pretrained.dim, n_groups, settings.instruction)
    id_vectors = torch.cat([torch.zeros(1, pretrained.dim), torch.from_numpy(vectors)])
    losses = train_user_sft(sft, train, targets, id_vectors, settings)
    planned = planned_sft_steps(train, settings)
    if len(losses) < planned:
        echo(f"user SFT: stopped by the {settings.sft_max_train_minutes:g}-minute budget after {len(losses)} of "
             f"{planned} steps")
    knowledge, distributions = item_knowledge(sft, id_vectors, settings)

    stage1.mkdir(parents=True, exist_ok=True)
    config.save(stage1)
    sft.lm.save_pretrained(stage1 / "lora")
    torch.save({"project_items": sft.project_items.state_dict(), "group_head": sft.group_head.state_dict()},
               stage1 / "heads.pt")
    np.savez(stage1 / KNOWLEDGE, knowledge=knowledge, distributions=distributions, labels=labels,
             sft_loss=np.array(losses))
    ItemTable(
        dataset.item_ids,
        knowledge,
        {"method": "tslrec", "lm": lm.name, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint,
         "n_groups": n_groups,
         "sft_steps": len(losses), "sft_planned_steps": planned, "sft_final_loss": float(np.mean(losses[-10:])) if losses else None},
    ).save(stage1 / "item_table.npz")
    echo(f"user SFT: {len(losses)} steps, final loss {np.mean(losses[-10:]) if losses else float('nan'):.4f}")
    return knowledge, distributions


def train_tslrec(config: TSLRecJobConfig) -> TrainResult:
    seqrec, method = config.seqrec, config.tslrec
    require_existing("--stage1", method.stage1, "no such TSLRec run directory")
    require_existing("--pretrained", method.pretrained, "no such run directory or item table")
    torch.manual_seed(seqrec.seed)
    dataset = load_dataset(seqrec.dataset)
    stage1 = Path(seqrec.out) / STAGE1
    if method.stage1 is not None:
        knowledge, distributions, labels, metadata = load_stage1(method.stage1, list(dataset.item_ids))
        if stage1_folder(method.stage1).resolve() != stage1.resolve():
            stage1.mkdir(parents=True, exist_ok=True)
            config.save(stage1)
            np.savez(stage1 / KNOWLEDGE, knowledge=knowledge, distributions=distributions, labels=labels)
            ItemTable(dataset.item_ids, knowledge, {**metadata, "stage1_from": str(method.stage1)}).save(
                stage1 / "item_table.npz"
            )
        echo(f"TSLRec: stage 1 reused from {method.stage1} ({distributions.shape[1]} groups, "
             f"{metadata.get('sft_steps')} SFT steps); training the gated backbone only")
    else:
        knowledge, distributions = run_stage1(config, dataset, stage1)

    layer = GatedFusionEmbedding(knowledge, distributions, seqrec.model.dim, seqrec.seed)
    layer.method = "tslrec"
    return train_seqrec(seqrec, dataset=dataset, item_embedding=layer, job=config)
