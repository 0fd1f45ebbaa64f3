"""Figures for pruning runs (matplotlib, Agg backend, PNG). Each function takes plain data and a path.

* :func:`gamma_histograms`: distribution of |gamma| over sparsity training with the cut threshold (Fig. 4).
* :func:`gamma_over_epochs`: every epoch's |gamma| distribution as one picture, threshold marked.
* :func:`channels_per_layer`: width of every layer or group before and after slimming (paper Fig. 5 style).
* :func:`accuracy_vs_ratio`: accuracy against pruning ratio, params or FLOPs.
* :func:`training_curves`: loss, accuracy, learning rate and L1 strength per epoch, over a run's phases.
* :func:`sensitivity_curves`: per-layer accuracy against sparsity (Han et al. Fig. 6).
* :func:`weights_kept`: share of weights (and FLOPs) each layer keeps after weight pruning.
* :func:`storage_sizes`: model size per storage format (dense, P, P+Q, P+Q+H).

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


THRESHOLD_COLOR = "#d62728"  # the cut threshold in every figure that shows one


def _histogram(
    record: Mapping[str, Any] | Sequence[float] | np.ndarray, bins: int, log: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """(edges, counts, count below the first edge) of one record; log bins when asked and present."""
    if isinstance(record, Mapping):
        if log and "log_bin_edges" in record and "log_counts" in record:
            edges = np.asarray(record["log_bin_edges"], dtype=float)
            return edges, np.asarray(record["log_counts"], dtype=float), int(record.get("log_below", 0) or 0)
        if "bin_edges" in record and "counts" in record:
            edges = np.asarray(record["bin_edges"], dtype=float)
            return edges, np.asarray(record["counts"], dtype=float), 0
        if "gammas" in record:
            record = record["gammas"]
        else:
            raise NetslimError("a gamma record needs 'bin_edges' and 'counts' (or raw 'gammas')")
    values = np.abs(np.asarray(record, dtype=float).ravel())
    if log:
        positive = values[values > 0]
        low = max(float(positive.min()) if positive.size else 1e-6, 1e-6)
        high = max(float(values.max()), low * 10)
        edges = np.logspace(np.log10(low), np.log10(high), bins + 1)
        counts, edges = np.histogram(values, bins=edges)
        return edges, counts.astype(float), int((values < edges[0]).sum())
    counts, edges = np.histogram(values, bins=bins)
    return edges, counts.astype(float), 0


def gamma_histograms(
    records: Sequence[Mapping[str, Any] | Sequence[float] | np.ndarray],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    bins: int = 50,
    max_panels: int = 6,
    threshold: float | None = None,
    log: bool | None = None,
    title: str = "Distribution of |BN scaling factors|",
) -> Path:
    """Histograms of |gamma|, one panel per record (epoch or sparsity rate), like Fig. 4 of the paper.

    A record is ``{"epoch": e, "bin_edges": [...], "counts": [...]}`` (the rows of ``gamma_hist.jsonl``,
    which may also hold ``log_bin_edges``/``log_counts``/``log_below``), ``{"gammas": [...]}``, or a raw
    array of gammas. With more than ``max_panels`` records, evenly spaced ones (always the first and the
    last) are drawn. ``threshold`` draws the channel-cut threshold as a red line in every panel. ``log``
    draws a log |gamma| axis (default: when the records carry log bins, or are raw arrays); L1 training
    pushes gammas toward zero by orders of magnitude, which a linear axis squeezes into its first bin.
    Panel titles come from ``labels``, else from the record's ``epoch`` / ``label`` / ``sparsity`` entry.
    """
    if not records:
        raise NetslimError("gamma_histograms needs at least one record")
    if log is None:
        first = records[0]
        log = not isinstance(first, Mapping) or "log_counts" in first or "gammas" in first
    picks = np.unique(np.linspace(0, len(records) - 1, min(max_panels, len(records))).round().astype(int))
    plt = _pyplot()
    ncols = min(3, len(picks))
    nrows = -(-len(picks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False, sharex=True)
    for ax in axes.flat[len(picks) :]:
        ax.set_visible(False)
    for ax, i in zip(axes.flat, picks):
        edges, counts, below = _histogram(records[i], bins, log)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#3b6ea5", edgecolor="none")
        if log:
            ax.set_xscale("log")
        if below:
            ax.text(
                0.02,
                0.95,
                f"{below} below {edges[0]:.0e}",
                transform=ax.transAxes,
                fontsize=7,
                va="top",
                color="#444444",
            )
        if threshold is not None:
            x = max(float(threshold), float(edges[0])) if log else float(threshold)
            ax.axvline(
                x,
                color=THRESHOLD_COLOR,
                linewidth=1.6,
                linestyle="--",
                label=f"cut threshold {threshold:.3g}",
            )
        ax.set_xlabel("|gamma|" + (" (log scale)" if log else ""))
        ax.set_title(_record_label(records[i], labels, int(i)), fontsize=10)
    for row in axes:
        row[0].set_ylabel("channels")
    if threshold is not None:
        axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    return _save(fig, path)


def gamma_over_epochs(
    records: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    threshold: float | None = None,
    title: str = "|gamma| over sparsity training",
) -> Path:
    """Every epoch's |gamma| distribution at once: epochs across, log |gamma| up, channel count as colour.

    ``records`` are ``gamma_hist.jsonl`` rows with ``log_bin_edges``/``log_counts`` (one per epoch, in
    order); ``threshold`` is drawn as a red line. Shows how L1 training splits the channels into a group
    driven toward zero and a group that stays, epoch by epoch, where :func:`gamma_histograms` shows six.
    """
    rows = [r for r in records if isinstance(r, Mapping) and "log_bin_edges" in r and "log_counts" in r]
    if not rows:
        raise NetslimError("gamma_over_epochs needs records with 'log_bin_edges' and 'log_counts'")
    edges = np.asarray(rows[-1]["log_bin_edges"], dtype=float)
    rows = [r for r in rows if len(r["log_counts"]) == len(edges) - 1]  # one bin layout for the picture
    counts = np.array([np.asarray(r["log_counts"], dtype=float) for r in rows])
    epochs = [r.get("epoch", i) for i, r in enumerate(rows)]
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    x = np.arange(len(epochs) + 1) - 0.5
    mesh = ax.pcolormesh(
        x,
        edges,
        counts.T + 0.0,
        norm=LogNorm(vmin=1, vmax=max(counts.max(), 2)),
        cmap="Blues",
        shading="flat",
    )
    ax.set_yscale("log")
    ticks = np.unique(np.linspace(0, len(epochs) - 1, min(10, len(epochs))).round().astype(int))
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(epochs[t]) for t in ticks])
    ax.set_xlabel("epoch")
    ax.set_ylabel("|gamma| (log scale)")
    if threshold is not None:
        y = max(float(threshold), float(edges[0]))
        label = f"cut threshold {threshold:.3g}"
        ax.axhline(y, color=THRESHOLD_COLOR, linestyle="--", linewidth=1.6, label=label)
        ax.legend(fontsize=7, loc="lower left")
    fig.colorbar(mesh, ax=ax, label="channels")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _record_label(record: Any, labels: Sequence[str] | None, i: int) -> str:
    if labels is not None:
        return str(labels[i])
    if isinstance(record, Mapping):
        for key, fmt in (("label", "{}"), ("epoch", "epoch {}"), ("sparsity", "lambda={}")):
            if key in record:
                return fmt.format(record[key])
    return f"#{i}"


def _bar_height(n: int) -> float:
    """Inches per bar of a horizontal bar chart: readable labels for 10 groups and for 160."""
    return 0.26 if n <= 30 else 0.17 if n <= 80 else 0.13


def channels_per_layer(
    widths: Mapping[str, tuple[int, int] | Sequence[int]],
    path: str | os.PathLike[str],
    *,
    title: str = "Channels kept per layer",
) -> Path:
    """Horizontal bars of each layer's (or prunable group's) width before (light) and after (dark) slimming.

    Like Fig. 5 of the paper, turned sideways so that every name stays readable: the figure grows with the
    number of bars (a 164-layer ResNet's ~160 groups fit), and each bar is labelled with its kept share.
    """
    if not widths:
        raise NetslimError("channels_per_layer needs at least one layer")
    names = list(widths)
    before = np.array([widths[n][0] for n in names], dtype=float)
    after = np.array([widths[n][1] for n in names], dtype=float)
    n = len(names)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, max(2.6, _bar_height(n) * n + 1.3)))
    y = np.arange(n)
    ax.barh(y, before, color="#c9d6e8", label="before", height=0.8)
    ax.barh(y, after, color="#1f4e79", label="kept", height=0.8)
    fontsize = 8 if n <= 30 else 6 if n <= 80 else 5
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=fontsize)
    ax.set_ylim(n - 0.5, -0.5)  # first layer at the top, as in the network
    ax.margins(x=0.12)
    for yi, b, a in zip(y, before, after):
        ax.text(b, yi, f" {a / b:.0%}" if b else "", va="center", fontsize=fontsize, color="#333333")
    ax.set_xlabel("channels")
    ax.set_title(f"{title} (kept {after.sum() / max(before.sum(), 1):.0%} overall)", fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    return _save(fig, path)


def weights_kept(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str = "Weights kept per layer",
) -> Path:
    """Horizontal bars of the share of weights (and of FLOPs, when given) each layer keeps after pruning.

    ``rows`` are ``{"name", "kept_pct"[, "flops_kept_pct", "weights"]}`` (percent), the per-layer rows of a
    weight-pruning run's ``results.json``; the layer's weight count is shown next to its name.
    """
    rows = [r for r in rows if r.get("kept_pct") is not None]
    if not rows:
        raise NetslimError("weights_kept needs at least one layer with kept_pct")
    n = len(rows)
    names = [
        f"{r['name']} ({_count(r['weights'])})" if _is_num(r.get("weights")) else str(r["name"]) for r in rows
    ]
    kept = np.array([float(r["kept_pct"]) for r in rows])
    flops = [r.get("flops_kept_pct") for r in rows]
    has_flops = all(isinstance(f, (int, float)) for f in flops)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, max(2.4, _bar_height(n) * n * (1.6 if has_flops else 1) + 1.3)))
    y = np.arange(n)
    h = 0.4 if has_flops else 0.8
    ax.barh(y - (h / 2 if has_flops else 0), kept, height=h, color="#1f4e79", label="weights kept")
    if has_flops:
        ax.barh(y + h / 2, np.array(flops, dtype=float), height=h, color="#e08a2e", label="FLOPs kept")
    for yi, k in zip(y, kept):
        ax.text(k, yi - (h / 2 if has_flops else 0), f" {k:.1f}%", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8 if n <= 30 else 6)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 112)
    ax.set_xlabel("kept (%)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    return _save(fig, path)


def _count(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.1f}{unit}"
    return f"{v:.0f}"


def storage_sizes(
    sizes: Mapping[str, float],
    path: str | os.PathLike[str],
    *,
    title: str = "Model size on disk",
) -> Path:
    """Horizontal bars of a model's size in each storage format (``{"dense": bytes, "P+Q+H": bytes, ...}``).

    Each bar is labelled with its size and its compression factor against the first entry.
    """
    if not sizes:
        raise NetslimError("storage_sizes needs at least one size")
    names = list(sizes)
    values = np.array([float(sizes[k]) for k in names]) / 1024.0
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(names) + 1.4))
    y = np.arange(len(names))
    ax.barh(y, values, color=["#c9d6e8"] + ["#1f4e79"] * (len(names) - 1), height=0.7)
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:,.1f} KiB ({values[0] / v:.1f}x)" if v else " 0", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.margins(x=0.35)
    ax.set_xlabel("KiB")
    ax.set_title(title, fontsize=10)
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


# metrics.jsonl keys of each panel of training_curves, in the order they are looked for
L1_KEYS = ("l1_strength", "sparsity_s")
NEAR_ZERO_KEYS = ("near_zero_share", "gamma_frac_below_1e-2", "gamma_frac_below_1e-3")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def training_curves(
    rows: Iterable[Mapping[str, Any]] | Mapping[str, Iterable[Mapping[str, Any]]],
    path: str | os.PathLike[str],
    *,
    title: str = "Training",
) -> Path:
    """Loss, accuracy, learning rate and (when logged) L1 strength per epoch, from ``metrics.jsonl`` rows.

    ``rows`` is one phase's rows or ``{phase name: rows}`` for a run of several phases (sparsity training,
    fine-tuning, retraining rounds ...): the phases are drawn one after another on a common epoch axis,
    separated by dotted lines and named at the top. Panels: keys ending in ``loss``; keys ending in
    ``acc``/``accuracy`` (in %); ``lr`` (log scale); the L1 strength (``l1_strength``, older runs
    ``sparsity_s``); the share of |gamma| near zero (``near_zero_share``, older runs
    ``gamma_frac_below_1e-2``/``1e-3``, in %). Panels without data are left out.
    """
    phases = (
        {str(k): [dict(r) for r in v] for k, v in rows.items()}
        if isinstance(rows, Mapping)
        else {"": [dict(r) for r in rows]}
    )
    phases = {k: v for k, v in phases.items() if v}
    if not phases:
        raise NetslimError("training_curves needs at least one metrics row")
    # one common x axis: phase k's epochs follow phase k-1's
    series: list[tuple[str, list[float], list[dict[str, Any]]]] = []
    offset = 0.0
    for name, prs in phases.items():
        xs = [offset + (float(r["epoch"]) if _is_num(r.get("epoch")) else i + 1) for i, r in enumerate(prs)]
        series.append((name, xs, prs))
        offset = max(xs)
    keys = sorted({k for _, _, prs in series for r in prs for k, v in r.items() if _is_num(v)} - {"epoch"})
    l1 = [k for k in L1_KEYS if k in keys][:1]
    near = [k for k in NEAR_ZERO_KEYS if k in keys]
    near = near[:1] if near and near[0] == "near_zero_share" else near
    panels = [
        ("loss", [k for k in keys if k.endswith("loss")], 1.0, False),
        ("accuracy (%)", [k for k in keys if k.endswith(("_acc", "accuracy")) or k == "acc"], 100.0, False),
        ("learning rate", [k for k in keys if k == "lr"], 1.0, True),
        ("L1 strength", l1, 1.0, None),  # log scale when an adaptive strength spans a decade or more
        ("|gamma| near zero (%)", near, 100.0, False),
    ]
    panels = [p for p in panels if p[1]] or [("value", keys[:4], 1.0, False)]
    plt = _pyplot()
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.1 * nrows + 0.3), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    first_x, last_x = series[0][1][0], series[-1][1][-1]
    pad = max(0.5, 0.03 * (last_x - first_x))
    for ax, (label, names, scale, logy) in zip(axes.flat, panels):
        ax.set_xlim(first_x - pad, last_x + pad)  # every panel on the run's whole epoch axis
        for ci, key in enumerate(names):
            labelled = False
            for _, xs, prs in series:
                pts = [(x, r[key] * scale) for x, r in zip(xs, prs) if _is_num(r.get(key))]
                if pts:
                    marker = "." if len(pts) < 40 else None
                    color = colors[ci % len(colors)]
                    ax.plot(*zip(*pts), marker=marker, color=color, label=None if labelled else key)
                    labelled = True
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        values = [r[names[0]] for _, _, prs in series for r in prs if _is_num(r.get(names[0]))]
        positive = bool(values) and min(values) > 0
        if positive and (logy or (logy is None and max(values) > 10 * min(values))):
            ax.set_yscale("log")
        if len(series) > 1:
            for _, xs, _ in series[1:]:
                ax.axvline(xs[0] - 0.5, color="#888888", linestyle=":", linewidth=1)
        handles, _labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7)
    for top in axes[0] if len(series) > 1 else []:
        if not top.get_visible():
            continue
        for name, xs, _ in series:
            top.annotate(
                name,
                xy=((xs[0] + xs[-1]) / 2, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                color="#555555",
                annotation_clip=False,
            )
    fig.suptitle(title)
    return _save(fig, path)


def sensitivity_curves(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike[str],
    *,
    baseline: float | None = None,
    max_drop: float | None = None,
    chosen: Mapping[str, float] | None = None,
    title: str = "Per-layer pruning sensitivity",
) -> Path:
    """Accuracy against sparsity, one line per layer (``{layer: [(sparsity, accuracy), ...]}``).

    ``baseline`` draws the unpruned accuracy as a dashed line and ``max_drop`` the lowest tolerated one
    (``baseline - max_drop``) in red; ``chosen`` marks each layer's selected sparsity on its curve.
    """
    if not curves:
        raise NetslimError("sensitivity_curves needs at least one layer")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for layer, pts in curves.items():
        pts = sorted(pts)
        if not pts:
            continue
        (line,) = ax.plot(*zip(*pts), marker=".", label=layer)
        if chosen and layer in chosen:
            s = float(chosen[layer])
            acc = float(np.interp(s, [p[0] for p in pts], [p[1] for p in pts]))
            ax.plot([s], [acc], marker="o", markersize=8, markerfacecolor="none", color=line.get_color())
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label="unpruned")
        if max_drop is not None:
            ax.axhline(
                baseline - max_drop,
                color=THRESHOLD_COLOR,
                linestyle="--",
                linewidth=1,
                label=f"tolerated drop {max_drop:.3g}",
            )
    ax.set_xlabel("sparsity (share of the layer's weights removed)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(curves) > 8 else 1)
    return _save(fig, path)
