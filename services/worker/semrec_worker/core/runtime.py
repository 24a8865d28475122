"""Where and in what precision code runs: one device choice, one precision rule, one autocast.

Precision is spelled `Precision` ("auto" | "bf16" | "fp32") everywhere, in code and as every command's
`--precision`; the boolean `bf16` that LH, LLMEmb, LLMSeqPrompt and TSLRec took before is their deprecated old
name `BF16_OLD_NAME` (None = auto, True = bf16, False = fp32), so old flags and saved configs keep working. torch is imported inside the functions: `lm.backends` (which the CLI imports for its
settings) uses this module, and `semrec --help` must not load torch.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal

from semrec.errors import UserError
from semrec.vocabulary import OldName

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "bf16", "fp32"]


def resolve_device(choice: str = "auto", index: int | None = None) -> torch.device:
    """'auto': CUDA when available, else CPU; 'cuda' without a CUDA device is an error. `index` picks the GPU
    (a process's local rank under torchrun)."""
    import torch

    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return torch.device("cuda") if index is None else torch.device("cuda", index % torch.cuda.device_count())


def native_bf16(device: str | torch.device) -> bool:
    """Whether bf16 autocast is likely to pay off: a CUDA GPU with bf16, or a CPU with avx512_bf16 / AMX.

    Without native bf16 the CPU emulates it and autocast is slower than fp32 (measured: docs/llmemb.md).
    """
    import torch

    if str(device).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    # torch's own CPU feature queries (cpuinfo-based, also off Linux): AVX512-BF16, or AMX tiles (AMX-BF16)
    queries = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(query()) for query in queries if query is not None)


def precision_of(bf16: bool | None) -> Precision:
    """The older boolean spelling: None = auto, True = bf16, False = fp32."""
    return "auto" if bf16 is None else ("bf16" if bf16 else "fp32")


def _precision_of_bf16(bf16: bool | None) -> dict[str, Precision]:
    return {"precision": precision_of(bf16)}


# `--bf16/--no-bf16` (config key `bf16`) of the settings that predate `--precision`
BF16_OLD_NAME = OldName("precision", _precision_of_bf16, cli_type=bool)


def resolve_precision(choice: Precision, device: str | torch.device) -> Literal["bf16", "fp32"]:
    """auto: bf16 where the device has native bf16 (CUDA with bf16, AMX / AVX512-BF16 CPUs), else fp32."""
    if choice != "auto":
        return choice
    return "bf16" if native_bf16(device) else "fp32"


def autocast(device: str | torch.device, precision: Precision):
    """bf16 autocast on the device's type for "bf16" ("auto" resolved first), a no-op context otherwise."""
    import torch

    if resolve_precision(precision, device) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast("cuda" if str(device).startswith("cuda") else "cpu", dtype=torch.bfloat16)


def default_device() -> str:
    """"cuda" when a CUDA device is available, else "cpu" (the LM backends' default)."""
    return resolve_device("auto").type


def apply_threads(threads: int | None) -> None:
    """`--threads N`: cap torch's intra-op threads and the BLAS / OpenMP pools numpy and scikit-learn use
    (threadpoolctl); None leaves the libraries' own choice. Called first by every command that computes."""
    if not threads:
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
