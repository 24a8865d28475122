"""LoRA adapters on a language model's projections (peft), set up once for every method that tunes an LM."""

from __future__ import annotations

from collections.abc import Sequence

from semrec.errors import UserError

LLAMA_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def add_lora(
    model, r: int, alpha: int, dropout: float, targets: Sequence[str] = LLAMA_LORA_TARGETS,
    top_layers: int | None = None,
):
    """`model` wrapped with LoRA adapters (base weights frozen) on those of `targets` it has; with `top_layers`,
    only in the last that many transformer layers (the layers below then build no autograd graph)."""
    from peft import LoraConfig, get_peft_model  # peft (and torch) only when an LM is tuned

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    modules = [t for t in targets if t in present]
    if not modules:
        raise UserError(f"none of the LoRA targets {list(targets)} exist in this model; set --lora-targets")
    layers = None
    if top_layers is not None:
        n_layers = int(model.config.num_hidden_layers)
        layers = list(range(max(0, n_layers - top_layers), n_layers))
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules, bias="none",
                        layers_to_transform=layers)
    return get_peft_model(model, config)
