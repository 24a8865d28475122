"""`semrec export onnx --run RUN_DIR`: a trained seqrec run -> RUN_DIR/bundle/ (ONNX encoder, items, metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig
from semrec.vocabulary import AcceptsOldNames, OldName


class ExportOnnxConfig(AcceptsOldNames, JobConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {"out": "bundle"}

    run: Path = Field(..., description="a finished `semrec train seqrec` run directory")
    bundle: Path | None = Field(None, description="bundle directory to write (default RUN_DIR/bundle)")
    opset: int = Field(17, ge=13, description="ONNX opset")
    tolerance: float = Field(1e-4, gt=0, description="max abs difference ONNX Runtime vs torch on sample inputs")
    evaluate: bool = Field(
        False, description="also rank the test split through the saved bundle (needs the run's dataset)"
    )
    threads: int | None = Field(None, ge=1, description="CPU threads of the export and the check (default: torch's choice)")


def export_onnx(config: ExportOnnxConfig) -> Path:
    from semrec_worker.core.runtime import apply_threads
    from semrec_worker.export import export_run  # torch only when the command runs
    from semrec_worker.refresh.item_layer import save_item_layer_encoder

    apply_threads(config.threads)
    result = export_run(config.run, config.bundle, config.opset, config.tolerance, config.evaluate)
    encoder = save_item_layer_encoder(config.run)  # frozen/dual runs: new items through the semantic view
    if encoder is not None:
        echo(f"item-layer refresh encoder in {encoder}")
    config.save(result.bundle_dir / "export_config.json")
    echo(
        f"bundle written to {result.bundle_dir} (final-position encoder graph: vs the full computation max abs "
        f"diff {result.final_position_diff:.2e}; ONNX vs torch {result.max_abs_diff:.2e}; {result.export_s:.1f} s)"
    )
    if result.bundle_test is not None:
        echo("bundle test metrics (ONNX Runtime + cosine top-k): "
             + " ".join(f"{k}={v:.4f}" for k, v in result.bundle_test.items()))
    return result.bundle_dir


def register(groups: CommandGroups) -> None:
    config_command(
        groups.export,
        "onnx",
        ExportOnnxConfig,
        export_onnx,
        "Export a seqrec run's encoder to ONNX (checked against torch with ONNX Runtime) and write the serving "
        "bundle: encoder.onnx, items.npz (unit-norm vectors, popularity), metadata.json.",
    )
