"""What a SAID run shows people: metrics.json, the accuracy curve (PNG) and a Table-5-like markdown of
ground-truth vs generated captions."""

from __future__ import annotations

import json
from pathlib import Path

from semrec_worker.methods.said.generation import word_accuracy

METRICS = "metrics.json"
PLOT = "accuracy.png"
EXAMPLES = "generation_examples.md"


def write_reports(run_dir: Path, metrics: list[dict], pairs: list[tuple[str, str]], summary: dict) -> None:
    run_dir = Path(run_dir)
    payload = {**summary, "epochs": metrics}
    (run_dir / METRICS).write_text(json.dumps(payload, indent=2) + "\n")
    if metrics:
        plot_accuracy(metrics, run_dir / PLOT, title=f"SAID stage 1: {summary.get('dataset')} / {summary.get('lm')}")
    if pairs:
        (run_dir / EXAMPLES).write_text(examples_markdown(pairs, metrics[-1] if metrics else {}))


def plot_accuracy(metrics: list[dict], path: Path, title: str = "SAID stage 1") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for phase in dict.fromkeys(m["phase"] for m in metrics):
        rows = [m for m in metrics if m["phase"] == phase]
        epochs = [m["epoch"] for m in rows]
        ax.plot(epochs, [m["word_accuracy"] for m in rows], marker="o", label=f"word accuracy ({phase})")
        ax.plot(epochs, [m["exact_match"] for m in rows], marker=".", linestyle="--", label=f"exact match ({phase})")
        token = [(m["epoch"], m["token_accuracy"]) for m in rows if m["token_accuracy"] is not None]
        if token:
            ax.plot(*zip(*token, strict=True), linestyle=":", label=f"teacher-forced token acc ({phase})")
    ax.set_xlabel("epoch (passes per item)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def examples_markdown(pairs: list[tuple[str, str]], last: dict, limit: int = 10) -> str:
    lines = [
        "# Generated captions (greedy decoding from the item embedding alone)",
        "",
        f"After epoch {last.get('epoch')}: word accuracy {last.get('word_accuracy')}, "
        f"exact match {last.get('exact_match')} over {len(pairs)} items.",
        "",
        "| ground truth | generated | word acc |",
        "|---|---|---|",
    ]
    for ref, gen in pairs[:limit]:
        lines.append(f"| {_cell(ref)} | {_cell(gen)} | {word_accuracy(ref, gen):.2f} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "(empty)"
