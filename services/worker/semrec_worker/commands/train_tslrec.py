"""`semrec train tslrec`: pre-grouping -> user-level SFT -> item augmentation -> a new gated backbone."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo

from semrec_worker.methods.tslrec_config import TSLRecSettings
from semrec_worker.training.config import SeqRecConfig


class TSLRecJobConfig(SeqRecConfig, TSLRecSettings):
    pretrained: Path = Field(
        ..., description="run directory (or item_table.npz) of a pretrained ID-based SASRec: its item embeddings"
    )
    llm: str = Field("default", description="'default' (SmolLM2-135M), 'tiny' (tests) or a local HF model dir")


def train_tslrec(config: TSLRecJobConfig):
    import numpy as np
    import torch
    from semrec.item_table import ItemTable

    from semrec_worker.data.dataset import load_dataset
    from semrec_worker.lm import load_language_model
    from semrec_worker.methods.tslrec import (
        GatedFusionEmbedding,
        UserSFTModel,
        add_lora,
        category_distributions,
        item_knowledge,
        pre_group,
        train_user_sft,
    )
    from semrec_worker.training import train_seqrec

    torch.manual_seed(config.seed)
    dataset = load_dataset(config)
    pretrained = ItemTable.load(config.pretrained)
    vectors, missing = pretrained.aligned(dataset.item_ids)
    if len(missing) == dataset.n_items:
        from semrec.errors import UserError

        raise UserError(f"{config.pretrained}: its item table shares no item with {dataset.name}")
    echo(f"TSLRec: {len(missing)} of {dataset.n_items} items have no pretrained embedding (zero rows)")

    labels = pre_group(vectors, config.n_groups, config.seed)
    n_groups = int(labels.max()) + 1
    train = dataset.train_sequences()
    targets = category_distributions(train, labels, n_groups)
    echo(f"pre-grouping: {n_groups} k-means groups over {dataset.n_items} items")

    lm = load_language_model(config.llm)
    for parameter in lm.model.parameters():
        parameter.requires_grad_(False)
    sft = UserSFTModel(add_lora(lm.model, config), lm.tokenizer, pretrained.dim, n_groups, config.instruction)
    id_vectors = torch.cat([torch.zeros(1, pretrained.dim), torch.from_numpy(vectors)])
    losses = train_user_sft(sft, train, targets, id_vectors, config)
    knowledge, distributions = item_knowledge(sft, id_vectors, config)

    run_dir = Path(config.out)
    stage1 = run_dir / "tslrec"
    stage1.mkdir(parents=True, exist_ok=True)
    config.save(stage1)
    sft.lm.save_pretrained(stage1 / "lora")
    torch.save({"project_items": sft.project_items.state_dict(), "group_head": sft.group_head.state_dict()},
               stage1 / "heads.pt")  # fmt: skip
    np.savez(stage1 / "knowledge.npz", knowledge=knowledge, distributions=distributions, labels=labels,
             sft_loss=np.array(losses))  # fmt: skip
    ItemTable(
        dataset.item_ids,
        knowledge,
        {"method": "tslrec", "lm": lm.name, "dataset": dataset.fingerprint, "n_groups": n_groups,
         "sft_steps": len(losses), "sft_final_loss": float(np.mean(losses[-10:])) if losses else None},
    ).save(stage1 / "item_table.npz")  # fmt: skip
    echo(f"user SFT: {len(losses)} steps, final loss {np.mean(losses[-10:]) if losses else float('nan'):.4f}")

    layer = GatedFusionEmbedding(knowledge, distributions, config.dim, config.seed)
    layer.method = "tslrec"
    seqrec_config = SeqRecConfig.model_validate(
        {k: v for k, v in config.model_dump().items() if k in SeqRecConfig.model_fields}
    )
    return train_seqrec(seqrec_config, dataset=dataset, item_embedding=layer)


def register(groups: CommandGroups) -> None:
    config_command(
        groups.train,
        "tslrec",
        TSLRecJobConfig,
        train_tslrec,
        "TSLRec: k-means pre-grouping of SASRec item embeddings, user-level LoRA SFT of the LM, "
        "item knowledge fused with ID embeddings through a gate in a new backbone.",
    )
