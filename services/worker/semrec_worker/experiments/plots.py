"""The figures of docs/results.md (matplotlib PNGs):

- t-SNE of item tables coloured by top-level category (SAID paper, Figure 7);
- SAID stage-1 generation accuracy over training (SAID paper, Figure 3), from a SAID run's metrics.json;
- SAID stage-2 gain against stage-1 generation accuracy (SAID paper, Figure 5), from `semrec bench said-gain`;
- NDCG@10 by item-popularity group, least to most popular (LLMEmb paper, Figure 5), one bar per report row
  (a method in each of its item layers, experiments/modes.py);
- the same bars for any named series of results files (`semrec eval plot-groups`: fused models beside the
  grid's rows).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from semrec_worker.experiments import modes
from semrec_worker.experiments.tables import Aggregate

MAX_CATEGORIES = 10


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _category_text(categories) -> str:
    if isinstance(categories, str):
        return categories
    return " ".join(categories) if len(categories) == 1 else (categories[0] if categories else "")


def top_level_categories(items) -> list[str]:
    """Each item's top-level category.

    A list of several categories is a path (Amazon) or a set of genres (MovieLens): its first entry. A single
    string (the Amazon 2018 scientific captions flatten the path into one string) loses the words every item
    shares (the root, e.g. "Industrial & Scientific") and keeps the next two words, extended while they are
    joined by "&" or "," ("Tapes, Adhesives & Sealants").
    """
    texts = [_category_text(item.categories) for item in items]
    flat = [t.split() for t in texts if t]
    common = 0
    if flat and all(len(getattr(item, "categories", [])) <= 1 for item in items):
        while all(len(w) > common and w[common] == flat[0][common] for w in flat):
            common += 1
    out = []
    for item, text in zip(items, texts, strict=True):
        if not text:
            out.append("(none)")
            continue
        if len(item.categories) > 1 and not isinstance(item.categories, str):
            out.append(item.categories[0])
            continue
        words = text.split()[common:]
        label = words[:2]
        rest = words[2:]
        while rest and (label[-1].endswith(",") or label[-1] == "&" or rest[0] == "&"):
            label.append(rest.pop(0))
        out.append(" ".join(label) or "(root only)")
    return out


def plot_tsne(tables: dict[str, object], dataset, path: Path, max_items: int = 2000, seed: int = 0) -> Path:
    """One t-SNE panel per ItemTable, points coloured by the item's top-level category (most common 10)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    plt = _pyplot()
    categories = np.array(top_level_categories(dataset.items))
    common = [c for c, _ in Counter(categories.tolist()).most_common(MAX_CATEGORIES)]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(dataset.n_items, size=min(max_items, dataset.n_items), replace=False))
    n = len(tables)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows + 0.8), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (name, table) in zip(axes.flat, tables.items(), strict=False):
        vectors, missing = table.aligned(dataset.item_ids)  # type: ignore[attr-defined]
        missing_set = set(missing)
        rows_ = np.array([i for i in chosen if dataset.item_ids[i] not in missing_set], dtype=np.int64)
        x = vectors[rows_].astype(np.float64)
        if x.shape[1] > 50:
            x = PCA(50, random_state=seed).fit_transform(x)
        xy = TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(x)
        labels = categories[rows_]
        other = ~np.isin(labels, common)
        ax.scatter(xy[other, 0], xy[other, 1], s=3, c="lightgrey", label="other")
        for k, category in enumerate(common):
            mask = labels == category
            ax.scatter(xy[mask, 0], xy[mask, 1], s=3, color=colours(k % 10), label=category)
        ax.set_title(f"{name} ({len(x)} items)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels_ = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, [label[:32] for label in labels_], loc="lower center", ncol=4, fontsize=7, markerscale=3)
    fig.suptitle(f"{dataset.name}: item tables, t-SNE, coloured by top-level category", fontsize=10)
    fig.tight_layout(rect=(0, 0.08 if n <= 3 else 0.05, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def said_accuracy_epochs(said_run: Path) -> list[dict] | None:
    """The per-evaluation records of a SAID run (its metrics.json `epochs`), or None when it has none."""
    run_dir = said_run if said_run.is_dir() else said_run.parent
    metrics = run_dir / "metrics.json"
    if not metrics.exists():
        return None
    epochs = json.loads(metrics.read_text()).get("epochs")
    if not epochs or "word_accuracy" not in epochs[0]:
        return None
    return epochs


def plot_said_accuracy(said_run: Path, path: Path, dataset_name: str) -> Path | None:
    from semrec_worker.methods.said.report import plot_accuracy

    epochs = said_accuracy_epochs(said_run)
    if epochs is None:
        return None
    plot_accuracy(epochs, path, title=f"SAID stage 1 on {dataset_name}: caption generation accuracy")
    return path


def plot_said_gain(curves: dict[str, list[dict]], path: Path, dataset_name: str) -> Path:
    """One line per backbone through its snapshots in step order: x = generation word accuracy, y = validation
    NDCG@10 gain over random init (%); the step-0 snapshot (the untrained start) is marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhline(0, color="grey", linewidth=0.8, linestyle="--", label="random init")
    for backbone, points in curves.items():
        if not points:
            continue
        x = [p["word_accuracy"] for p in points]
        y = [p["gain_ndcg@10"] * 100 for p in points]
        (line,) = ax.plot(x, y, marker="o", label=backbone)
        starts = [(xi, yi) for p, xi, yi in zip(points, x, y, strict=True) if p["step"] == 0]
        if starts:
            ax.scatter(*zip(*starts, strict=True), marker="*", s=220, color=line.get_color(), edgecolor="black",
                       zorder=3, label=f"{backbone}: step 0 (mean caption token embedding)")
    ax.set_xlabel("stage-1 generation word accuracy of the table")
    ax.set_ylabel("stage-2 valid NDCG@10 vs random init (%)")
    ax.set_title(f"SAID on {dataset_name}: stage-2 gain against generation accuracy", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_popularity_groups(aggregates: list[Aggregate], backbones: list[str], path: Path, dataset_name: str,
                           metric: str = "ndcg@10") -> Path | None:
    """Grouped bars: per protocol (rows) and backbone (columns), the metric in each popularity group per method."""
    with_groups = [a for a in aggregates if a.popularity_groups]
    if not with_groups:
        return None
    protocols = [p for p in ("full", "sampled100") if any(a.protocol == p for a in with_groups)]
    n_groups = len(with_groups[0].popularity_groups[metric])
    plt = _pyplot()
    fig, axes = plt.subplots(len(protocols), len(backbones), figsize=(5.2 * len(backbones), 3.4 * len(protocols)),
                             squeeze=False)
    for r, protocol in enumerate(protocols):
        for c, backbone in enumerate(backbones):
            ax = axes[r][c]
            shown = sorted((a for a in with_groups if a.protocol == protocol and a.backbone in (backbone, None)),
                           key=lambda a: modes.sort_key(a.method))
            if not shown:
                ax.axis("off")
                continue
            width = 0.8 / len(shown)
            for k, agg in enumerate(shown):
                xs = np.arange(n_groups) + (k - (len(shown) - 1) / 2) * width
                ax.bar(xs, agg.popularity_groups[metric], width, label=modes.label(agg.method))
            cases = shown[0].popularity_groups["cases"]
            ax.set_xticks(np.arange(n_groups), [f"G{g + 1}\n({int(n)} cases)" for g, n in enumerate(cases)],
                          fontsize=7)
            ax.set_title(f"{backbone}, {protocol}", fontsize=9)
            ax.set_ylabel(metric.upper(), fontsize=8)
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{dataset_name}: {metric} by item-popularity group\n(G1 least popular items ... "
                 f"G{n_groups} most popular; equal numbers of items; mean over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_group_series(series: dict[str, list[float]], cases: list[float], path: Path, title: str,
                      metric: str = "ndcg@10") -> Path:
    """Grouped bars of one metric per popularity group (least popular first), one bar per named series."""
    plt = _pyplot()
    n_groups = len(cases)
    fig, ax = plt.subplots(figsize=(1.6 * n_groups + 2.5, 3.8))
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series.items()):
        xs = np.arange(n_groups) + (k - (len(series) - 1) / 2) * width
        ax.bar(xs, values, width, label=label)
    ax.set_xticks(np.arange(n_groups), [f"G{g + 1}\n({int(n)} cases)" for g, n in enumerate(cases)], fontsize=7)
    ax.set_ylabel(metric.upper(), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{title}\n(G1 least popular items ... G{n_groups} most popular; mean over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
