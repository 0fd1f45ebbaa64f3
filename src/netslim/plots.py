"""Figures for pruning runs (matplotlib, Agg backend, PNG). Each function takes plain data and a path.

* :func:`gamma_histograms`: distribution of |gamma| over sparsity training (paper Fig. 4 style).
* :func:`channels_per_layer`: width of every layer before and after slimming (paper Fig. 5 style).
* :func:`accuracy_vs_ratio`: accuracy against pruning ratio, params or FLOPs.
* :func:`training_curves`: loss, accuracy and learning rate per epoch from ``metrics.jsonl`` rows.
* :func:`sensitivity_curves`: per-layer accuracy against sparsity.

Every function returns the path it wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from netslim.errors import NetslimError


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise NetslimError("plots need matplotlib: pip install 'netslim[plots]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    import io

    from netslim._atomic import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file (``metrics.jsonl``, ``gamma_hist.jsonl``), skipping blank or torn lines."""
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a run killed mid-write leaves a partial last line
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _histogram(
    record: Mapping[str, Any] | Sequence[float] | np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(record, Mapping):
        if "bin_edges" in record and "counts" in record:
            return np.asarray(record["bin_edges"], dtype=float), np.asarray(record["counts"], dtype=float)
        if "gammas" in record:
            record = record["gammas"]
        else:
            raise NetslimError("a gamma record needs 'bin_edges' and 'counts' (or raw 'gammas')")
    values = np.abs(np.asarray(record, dtype=float).ravel())
    counts, edges = np.histogram(values, bins=bins)
    return edges, counts.astype(float)


def gamma_histograms(
    records: Sequence[Mapping[str, Any] | Sequence[float] | np.ndarray],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    bins: int = 50,
    max_panels: int = 6,
    title: str = "Distribution of |BN scaling factors|",
) -> Path:
    """Histograms of |gamma|, one panel per record (epoch or sparsity rate), like Fig. 4 of the paper.

    A record is ``{"epoch": e, "bin_edges": [...], "counts": [...]}`` (the rows of ``gamma_hist.jsonl``),
    ``{"gammas": [...]}``, or a raw array of gammas. With more than ``max_panels`` records, evenly spaced
    ones (always the first and the last) are drawn. Panel titles come from ``labels``, else from the
    record's ``epoch`` / ``label`` / ``sparsity`` entry.
    """
    if not records:
        raise NetslimError("gamma_histograms needs at least one record")
    picks = np.unique(np.linspace(0, len(records) - 1, min(max_panels, len(records))).round().astype(int))
    plt = _pyplot()
    ncols = min(3, len(picks))
    nrows = -(-len(picks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), squeeze=False)
    for ax in axes.flat[len(picks) :]:
        ax.set_visible(False)
    for ax, i in zip(axes.flat, picks):
        edges, counts = _histogram(records[i], bins)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#3b6ea5", edgecolor="none")
        ax.set_xlabel("|gamma|")
        ax.set_title(_record_label(records[i], labels, int(i)))
    for row in axes:
        row[0].set_ylabel("count")
    fig.suptitle(title)
    return _save(fig, path)


def _record_label(record: Any, labels: Sequence[str] | None, i: int) -> str:
    if labels is not None:
        return str(labels[i])
    if isinstance(record, Mapping):
        for key, fmt in (("label", "{}"), ("epoch", "epoch {}"), ("sparsity", "lambda={}")):
            if key in record:
                return fmt.format(record[key])
    return f"#{i}"


def channels_per_layer(
    widths: Mapping[str, tuple[int, int] | Sequence[int]],
    path: str | os.PathLike[str],
    *,
    title: str = "Channels kept per layer",
) -> Path:
    """Bar chart of each layer's width before (light) and after (dark) slimming, like Fig. 5 of the paper."""
    if not widths:
        raise NetslimError("channels_per_layer needs at least one layer")
    names = list(widths)
    before = np.array([widths[n][0] for n in names], dtype=float)
    after = np.array([widths[n][1] for n in names], dtype=float)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(names) + 2), 3.6))
    x = np.arange(len(names))
    ax.bar(x, before, color="#c9d6e8", label="before")
    ax.bar(x, after, color="#1f4e79", label="after")
    ax.set_xticks(x)
    ax.set_xticklabels(names if len(names) <= 40 else [str(i) for i in x], rotation=90, fontsize=7)
    ax.set_ylabel("channels")
    ax.set_title(f"{title} (kept {after.sum() / max(before.sum(), 1):.0%} overall)")
    ax.legend()
    return _save(fig, path)


def accuracy_vs_ratio(
    points: Mapping[str, Sequence[tuple[float, float]]] | Sequence[tuple[float, float]],
    path: str | os.PathLike[str],
    *,
    xlabel: str = "pruning ratio",
    ylabel: str = "accuracy",
    baseline: float | None = None,
    title: str = "Accuracy vs pruning",
) -> Path:
    """Accuracy against a pruning measure (ratio, params or FLOPs): one line per series.

    ``points`` is ``[(x, accuracy), ...]`` or ``{"series name": [(x, accuracy), ...]}``;
    ``baseline`` draws the unpruned accuracy as a dashed line.
    """
    series = {"": points} if not isinstance(points, Mapping) else points
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, pts in series.items():
        pts = sorted(pts)
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker="o", label=name or None)
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="grey", label="baseline")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(series) or baseline is not None:
        ax.legend()
    return _save(fig, path)


def training_curves(
    rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str = "Training",
) -> Path:
    """Loss, accuracy and learning rate per epoch from ``metrics.jsonl`` rows (missing keys are skipped).

    Keys ending in ``loss`` go in the first panel, keys ending in ``acc``/``accuracy`` in the second and
    ``lr`` in the third; ``epoch`` is the x axis (row index when absent).
    """
    rows = [dict(r) for r in rows]
    if not rows:
        raise NetslimError("training_curves needs at least one metrics row")
    xs = [r.get("epoch", i) for i, r in enumerate(rows)]
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k != "epoch"})
    panels = [
        ("loss", [k for k in keys if k.endswith("loss")]),
        ("accuracy", [k for k in keys if k.endswith(("acc", "accuracy"))]),
        ("learning rate", [k for k in keys if k == "lr"]),
    ]
    panels = [p for p in panels if p[1]] or [("value", keys[:4])]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    for ax, (label, names) in zip(axes[0], panels):
        for name in names:
            pts = [(x, r[name]) for x, r in zip(xs, rows) if isinstance(r.get(name), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if label == "learning rate":
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def sensitivity_curves(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike[str],
    *,
    title: str = "Per-layer pruning sensitivity",
) -> Path:
    """Accuracy against sparsity, one line per layer (``{layer: [(sparsity, accuracy), ...]}``)."""
    if not curves:
        raise NetslimError("sensitivity_curves needs at least one layer")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for layer, pts in curves.items():
        pts = sorted(pts)
        if pts:
            ax.plot(*zip(*pts), marker=".", label=layer)
    ax.set_xlabel("sparsity (fraction of weights removed)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(curves) > 8 else 1)
    return _save(fig, path)
