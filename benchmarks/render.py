"""Render docs/RESULTS.md and docs/img/*.png from the stored row JSON (never from typed-in figures).

Deterministic: the same JSON gives the same markdown and plots. Missing rows are named with the command
that produces them; failed rows with their error. The page leads with the standard suite's part
(:mod:`benchmarks.render_standard`); both build on the shared formatters of :mod:`benchmarks.render_common`,
which import neither.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from benchmarks import paper_numbers as paper
from benchmarks.render_common import (
    Results,
    absent,
    command,
    f2,
    n,
    ok,
    plot,
    pruned_pct,
    section,
    table,
    verdict,
)
from benchmarks.render_standard import standard_section
from benchmarks.suite import load_results

SUITES = ("full", "quick", "smoke")


# ---------------------------------------------------------------- slimming
def slimming_section(suite: str, results: Results, img: Path) -> list[str]:
    """Paper Table 1 layout, targets, the ratio sweep and the multi-pass table."""
    from benchmarks.rows_slimming import FAMILIES

    out = [
        "### Network Slimming (paper Table 1 layout, reduced scale)",
        "",
        "Test error on the test split; params / FLOPs (FLOPs = 2 x multiply-adds) with the share pruned "
        "relative to the unpruned network. Sparsity training: netslim's budget-aware L1 strength "
        '(`s="auto"`, proximal) aimed at the family\'s largest ratio, then the BatchNorm statistics '
        "recomputed for the final weights, as `netslim slim --sparsity auto` does. Near zero: |gamma| "
        "below 1% of the mean |gamma| of the strongest 10% of channels; cut: the share of the total "
        "|gamma| (gamma mass) the cut removed (above a trace it reaches into the bulk and netslim warns). "
        "No latency here: these rows train beside other work; timings are in *Speed and cost*, taken in a "
        "quiet window.",
        "",
    ]
    rows, notes, targets = [], [], []
    for fam in FAMILIES.values():
        base_name, sparse_name = f"slim_{fam.key}_baseline", f"slim_{fam.key}_sparse"
        base, sparse = ok(results, base_name), ok(results, sparse_name)
        for name, res, stage in ((base_name, base, "baseline"), (sparse_name, sparse, "sparsity-trained")):
            if res is None:
                notes.append(absent(suite, results, name))
                continue
            label = f"{res['model']} {_kw(res['model_kwargs'])}"
            extra = f" ({_recipe(res['sparsity'])})" if stage != "baseline" else ""
            share = res.get("near_zero_share")
            rows.append(
                [
                    label,
                    f"{stage}{extra}, {res['epochs']} ep",
                    f2(res["test_error"]),
                    "-" if share is None else f"{100 * share:.0f}% near zero",
                    n(res["params"]),
                    n(res["flops"]),
                    f"`{command(suite, name)}`",
                ]
            )
        for ratio in fam.ratios:
            name = f"slim_{fam.key}_{round(ratio * 100)}"
            res = ok(results, name)
            if res is None:
                notes.append(absent(suite, results, name))
                continue
            label = f"{res['model']} {_kw(res['model_kwargs'])}"
            pct = f"{round(ratio * 100)}%"
            p = pruned_pct(res["params_before"], res["params_after"])
            fl = pruned_pct(res["flops_before"], res["flops_after"])
            rows.append(
                [
                    label,
                    f"pruned {pct}, before fine-tuning",
                    f2(res["test_error_pruned"]),
                    _cut_cleanliness(res.get("readiness")),
                    p,
                    fl,
                    f"`{command(suite, name)}`",
                ]
            )
            rows.append(
                [
                    label,
                    f"pruned {pct}, fine-tuned {res['finetune_epochs']} ep",
                    f2(res["test_error_finetuned"]),
                    "",
                    p,
                    fl,
                    f"`{command(suite, name)}`",
                ]
            )
            if base is not None:
                diff = res["test_error_finetuned"] - base["test_error"]
                targets.append(
                    [
                        label,
                        pct,
                        f2(base["test_error"]),
                        f2(res["test_error_finetuned"]),
                        f"{diff:+.2f}",
                        verdict(diff <= paper.TARGET_SLIM_ERROR_POINTS),
                    ]
                )
    out += (
        table(
            [
                "model",
                "stage",
                "test error %",
                "gammas / cut",
                "params (pruned)",
                "FLOPs (pruned)",
                "command",
            ],
            rows,
        )
        if rows
        else []
    )
    out += ["", *notes, ""] if notes else [""]
    out += [
        f"Target: at the paper's ratios, fine-tuned test error within {paper.TARGET_SLIM_ERROR_POINTS} "
        "points of the baseline. At this scale (a 12,000-image subset, a few epochs) the table checks the "
        "workflow end to end; the standard suite above, on the full training split with 15-30 epochs, is "
        "the evidence for the target.",
        "",
    ]
    if targets:
        out += table(
            ["model", "ratio", "baseline error %", "fine-tuned error %", "difference (points)", "target"],
            targets,
        )
        out.append("")
    out += ratio_sweep_section(suite, results, img)
    out += strengths_section(suite, results)
    out += multipass_section(suite, results)
    return out


def _recipe(sparsity: float | dict[str, Any]) -> str:
    """A sparsity recipe in a table cell: ``lambda 0.005`` or ``auto, target 70%``."""
    if not isinstance(sparsity, dict):
        return f"lambda {sparsity:g}"
    if sparsity.get("s") == "auto":
        return f"auto, target {100 * sparsity['target']:.0f}%"
    return f"lambda {sparsity['s']:g}"


def _cut_cleanliness(readiness: dict[str, Any] | None) -> str:
    """How clean a cut was: the share of |gamma| mass it removed, and whether it reached into the bulk."""
    if not readiness:
        return "-"
    where = "into the bulk" if readiness.get("in_bulk") else "clean"
    return f"{where}, {100 * readiness['removed_mass']:.2f}% of the gamma mass removed"


def _kw(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(kwargs.items()))


def ratio_sweep_section(suite: str, results: Results, img: Path) -> list[str]:
    """Accuracy vs ratio without fine-tuning: beta folded into the next layer vs the paper's plain cut."""
    name = "slim_vgg_ratio_sweep"
    out, res = section(
        suite, results, name, "Accuracy vs pruning ratio without fine-tuning: folded beta vs plain cut"
    )
    if res is None:
        return out
    out += [
        f"Sparsity-trained {res['model']} ({_kw(res['model_kwargs'])}), unpruned test error "
        f"{f2(res['test_error_unpruned'])}%. Output error is the relative max difference from the masked "
        "model (gamma = 0, beta kept) on random inputs. Folded (mean): netslim's default, padded convs "
        "get the spatial mean of the removed channels' contribution; folded (interior): exact away from the "
        f"borders; plain cut: beta dropped, as the reference code does. Command: `{command(suite, name)}`",
        "",
    ]
    rows = [
        [
            f"{p['ratio']:.2f}",
            f2(p["test_error_folded"]),
            f2(p.get("test_error_folded_interior")),
            f2(p["test_error_plain_cut"]),
            f"{p['test_error_plain_cut'] - p['test_error_folded']:+.2f}",
            f"{p['output_error_folded']:.1e}",
            _e1(p.get("output_error_folded_interior")),
            f"{p['output_error_plain_cut']:.1e}",
            n(p["params"]),
        ]
        for p in res["points"]
    ]
    out += table(
        [
            "ratio",
            "error % folded (mean)",
            "error % folded (interior)",
            "error % plain cut",
            "plain - folded (points)",
            "output error folded (mean)",
            "output error folded (interior)",
            "output error plain",
            "params",
        ],
        rows,
    )
    png = plot(img / f"{suite}-ratio-sweep.png", lambda ax: _sweep_plot(ax, res))
    out += ["", f"![accuracy vs ratio]({png})", ""] if png else [""]
    return out


def strengths_section(suite: str, results: Results) -> list[str]:
    """Fixed L1 strengths against ``BNSparsity("auto")``: near-zero share and the error right after a cut."""
    name = "slim_vgg_strengths"
    out, res = section(
        suite, results, name, "Fixed L1 strength vs auto in a short run (cut without fine-tuning)"
    )
    if res is None:
        return out
    out += [
        f"{res['model']} ({_kw(res['model_kwargs'])}), {res['epochs']} sparsity epoch(s) per recipe from the "
        f"same initial weights, then a global {round(100 * res['ratio'])}% cut with beta folded. Near zero: "
        "|gamma| below 1% of the mean |gamma| of the strongest 10% of channels, at the last epoch; "
        "threshold ratio: the cut threshold over that mean (above 0.1 the cut reaches into the bulk and "
        f"`netslim.CutReadinessWarning` is emitted). Command: `{command(suite, name)}`",
        "",
    ]
    rows = []
    for r in res["recipes"]:
        strength = [v for v in r["l1_strength"] if v is not None]
        share = [v for v in r["near_zero_share"] if v is not None]
        ready = r.get("readiness") or {}
        ratio = ready.get("threshold_ratio")
        rows.append(
            [
                r["recipe"],
                "-" if not strength else f"{strength[-1]:.3g}",
                "-" if not share else f"{100 * share[-1]:.0f}%",
                f2(r["test_error_before_cut"]),
                f2(r["test_error_after_cut"]),
                "-" if ratio is None else f"{ratio:.3g}",
                "yes" if r["readiness_warning"] else "no",
            ]
        )
    out += table(
        [
            "recipe",
            "final strength",
            "near zero",
            "test error % before cut",
            "right after cut",
            "threshold ratio",
            "readiness warning",
        ],
        rows,
    )
    return [*out, ""]


def _latency_variants(res: dict[str, Any]) -> list[str]:
    """Batch-64 speedup / FLOP ratio of each measured setting (channels_last, fused BN, round_to)."""
    variants = res.get("variants") or []
    if not variants:
        return []
    rows = [
        [
            v["setting"],
            str(v["round_to"]),
            str(v["threads"]),
            f"{v['flop_ratio']:.2f}x",
            f"{v['batch64']['speedup']:.2f}x",
            f2(v["batch64"].get("speedup_over_flop_ratio")),
        ]
        for v in variants
    ]
    head = ["", "Inference settings (batch 64; target: speedup >= 0.9 x FLOP ratio):", ""]
    return head + table(
        ["setting", "round_to", "threads", "FLOP ratio", "speedup", "speedup / FLOP ratio"], rows
    )


def _e1(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _sweep_plot(ax: Any, res: dict[str, Any]) -> None:
    xs = [p["ratio"] for p in res["points"]]
    ax.plot(xs, [100 - p["test_error_folded"] for p in res["points"]], "o-", label="folded beta (netslim)")
    ax.plot(
        xs, [100 - p["test_error_plain_cut"] for p in res["points"]], "s--", label="plain cut (paper code)"
    )
    ax.set_xlabel("share of channels pruned")
    ax.set_ylabel("test accuracy % (no fine-tuning)")
    ax.legend()


def multipass_section(suite: str, results: Results) -> list[str]:
    """Paper Table 4 layout for the multi-pass VGG, with the paper's CIFAR-10 rows beside it."""
    name = "slim_vgg_multipass"
    out = ["### Multi-pass slimming (paper Table 4 layout)", ""]
    res = ok(results, name)
    if res is None:
        out.append(absent(suite, results, name))
    else:
        out += [
            f"{res['model']} ({_kw(res['model_kwargs'])}); each pass: sparsity training with the auto "
            f"strength aimed at 50% of the channels left (skipped in pass 1, which starts from the "
            f"sparsity-trained checkpoint), the global 50% threshold with at most 50% of any layer (the "
            f"channels the cap keeps are not replaced, so a pass may cut less), "
            f"{res['epochs_per_phase']} fine-tuning epoch(s). Command: `{command(suite, name)}`",
            "",
        ]
        out += table(
            [
                "iter",
                "trained error %",
                "fine-tuned error %",
                "channels pruned %",
                "params pruned %",
                "FLOPs pruned %",
            ],
            [
                [
                    str(p["iter"]),
                    f2(p["test_error_trained"]),
                    f2(p["test_error_finetuned"]),
                    f2(p.get("channels_pruned_pct")),
                    f2(p["params_pruned_pct"]),
                    f2(p["flops_pruned_pct"]),
                ]
                for p in res["passes"]
            ],
        )
    out += ["", f"Paper's numbers ({paper.MULTIPASS_SOURCE}):", ""]
    out += table(
        ["iter", "trained error %", "fine-tuned error %", "params pruned %", "FLOPs pruned %"],
        [
            [
                str(p["iter"]),
                f2(p["trained"]),
                f2(p["finetuned"]),
                f2(p["params_pruned"]),
                f2(p["flops_pruned"]),
            ]
            for p in paper.MULTIPASS_TABLE4_CIFAR10
        ],
    )
    return [*out, ""]


def slimming_paper_section() -> list[str]:
    """The paper's Table 1 (CIFAR-10) and CIFAR-100 / SVHN errors, clearly labelled."""
    out = [
        f"### Paper's numbers: {paper.SLIMMING_SOURCE}",
        "",
        "Not measured here. With the data present, the same rows run on it with e.g. "
        "`python -m benchmarks.run --suite full --dataset cifar10 --data-dir DIR --results-dir "
        "benchmarks/results-cifar10 --docs-dir docs/cifar10` (likewise `cifar100`, `svhn`).",
        "",
    ]
    rows = [
        [
            str(r["model"]),
            str(r["setting"]),
            f2(r["error"]),  # type: ignore[arg-type]
            f"{n(r['params'])}" + (f" ({r['params_pruned']}%)" if "params_pruned" in r else ""),  # type: ignore[arg-type]
            f"{n(r['flops'])}" + (f" ({r['flops_pruned']}%)" if "flops_pruned" in r else ""),
        ]  # type: ignore[arg-type]
        for r in paper.SLIMMING_TABLE1_CIFAR10
    ]
    out += table(["model", "setting", "test error %", "params (pruned)", "FLOPs (pruned)"], rows)
    out += [
        "",
        *table(
            ["model", "CIFAR-100 error %", "SVHN error %"],
            [[str(r["model"]), str(r["cifar100"]), str(r["svhn"])] for r in paper.SLIMMING_TABLE1_OTHER],
        ),
    ]
    return [*out, ""]


# ---------------------------------------------------------------- Han / Deep Compression
def weights_section(suite: str, results: Results) -> list[str]:
    """Han et al. Table 1 layout, per-layer Tables 2-3 layout and Deep Compression sizes."""
    out = [
        "### Weight pruning (Han et al. Tables 1-3 layout)",
        "",
        f"Target: >= {paper.TARGET_HAN_RATE:g}x fewer weights with test error within "
        f"{paper.TARGET_HAN_ERROR_POINTS} points of the baseline.",
        "",
    ]
    rows, layer_rows, size_rows, notes = [], [], [], []
    for name, model in (("han_lenet300_100", "lenet300_100"), ("han_lenet5", "lenet5")):
        res = ok(results, name)
        if res is None:
            notes.append(absent(suite, results, name))
            continue
        diff = res["pruned_error"] - res["baseline_error"]
        met = res["compression_rate"] >= paper.TARGET_HAN_RATE and diff <= paper.TARGET_HAN_ERROR_POINTS
        rows.append(
            [
                model,
                f2(res["baseline_error"]),
                f2(res["pruned_error"]),
                f"{diff:+.2f}",
                f"{n(res['weights'])} -> {n(res['weights_kept'])}",
                f"{res['compression_rate']:.1f}x",
                f2(res["flops_kept_pct"]),
                verdict(met),
                f"`{command(suite, name)}`",
            ]
        )
        ref = paper.HAN_PER_LAYER[model]
        for lay in res["layers"]:
            pk = ref.get(lay["name"])
            layer_rows.append(
                [
                    model,
                    lay["name"],
                    n(lay["weights"]),
                    f2(lay["kept_pct"]),
                    f2(lay.get("flops_kept_pct")),
                    "-" if pk is None else f"{pk[0]} / {pk[1]}",
                ]
            )
        dc = paper.DEEP_COMPRESSION[model]
        paper_rate = {"P": dc["p_rate"], "P+Q": dc["pq_rate"], "P+Q+H": dc["pqh_rate"]}
        for label, s in res["sizes"].items():
            size_rows.append(
                [
                    model,
                    label,
                    n(s["bytes"]),
                    f2(100.0 * s["bytes"] / s["dense_bytes"]),
                    f"{s['ratio']:.1f}x",
                    f2(s["test_error"]),
                    f"{paper_rate[label]:g}x" if label in paper_rate else "-",
                ]
            )
    if rows:
        out += table(
            [
                "model",
                "baseline error %",
                "pruned error %",
                "difference",
                "weights before -> after",
                "rate",
                "FLOPs kept %",
                "target",
                "command",
            ],
            rows,
        )
    out += ["", *notes, "", f"Paper's numbers ({paper.HAN_SOURCE}):", ""]
    out += table(
        ["model", "baseline error %", "pruned error %", "params before -> after", "rate"],
        [
            [
                m,
                f2(r["error"]),
                f2(r["pruned_error"]),
                f"{n(r['params'])} -> {n(r['params_after'])}",
                f"{r['rate']:g}x",
            ]
            for m, r in paper.HAN_TABLE1.items()
        ],
    )
    if layer_rows:
        out += ["", "Per layer (measured; last column the paper's weights kept % / FLOPs kept %):", ""]
        out += table(["model", "layer", "weights", "weights kept %", "FLOPs kept %", "paper"], layer_rows)
    if size_rows:
        out += [
            "",
            "Storage: pruning only (P), + quantization (P+Q), + Huffman coding (P+Q+H); test error of "
            "the decoded model; last column the paper's rate "
            f"({paper.DEEP_COMPRESSION_SOURCE}).",
            "",
        ]
        out += table(
            ["model", "setting", "bytes", "% of dense", "rate", "test error %", "paper rate"], size_rows
        )
    return [*out, ""]


# ---------------------------------------------------------------- speed
def _load_line(res: dict[str, Any]) -> str:
    """The machine load a speed row was measured under (flagged when it exceeded the cores)."""
    load = res.get("load")
    if not load:
        return "Load: not recorded."
    before, after = (load.get(k) for k in ("load_before", "load_after"))
    text = f"Load average {f2(before)} -> {f2(after)} on {load.get('cores')} cores"
    return text + (" (UNDER LOAD: figures not trustworthy)." if load.get("over_cores") else ".")


def _verdict(res: dict[str, Any]) -> str:
    met = res.get("target_met")
    return "**target met**" if met else ("**target NOT met**" if met is not None else "target not decided")


def speed_section(suite: str, results: Results) -> list[str]:
    """Issue-13 target rows (slim vs TP, sparse inference, inference form, BN sparsity overhead), studies."""
    out = [
        "### Speed and cost",
        "",
        "Ratios measured side by side in one process with the one timer (interleaved, medians with their "
        "interquartile range); each row records the load average it ran under. The four rows with targets "
        "are run together by `benchmarks/timing_session.sh` in a quiet window.",
        "",
        "#### `netslim.slim` vs Torch-Pruning (224x224 networks)",
        "",
    ]
    res = ok(results, "speed_slim_vs_tp")
    out += [absent(suite, results, "speed_slim_vs_tp")] if res is None else slim_vs_tp_table(res, suite)
    out += ["", "#### Sparse inference: converted vs unconverted FC layers", ""]
    res = ok(results, "speed_sparse_inference")
    out += [absent(suite, results, "speed_sparse_inference")] if res is None else sparse_table(res, suite)
    out += ["", "#### Slimmed VGG-19 in its inference form", ""]
    res = ok(results, "speed_inference_form")
    out += [absent(suite, results, "speed_inference_form")] if res is None else form_table(res, suite)
    out += ["", "#### Sparsity-training step overhead", ""]
    res = ok(results, "speed_sparsity_overhead")
    out += [absent(suite, results, "speed_sparsity_overhead")] if res is None else overhead_table(res, suite)
    out += ["", "#### Study: slimmed vs unpruned VGG-19 (70%) per layout and round_to", ""]
    res = ok(results, "speed_slimmed_latency")
    if res is None:
        out.append(absent(suite, results, "speed_slimmed_latency"))
    else:
        out += [
            f"FLOPs {n(res['flops_before'])} -> {n(res['flops_after'])} (ratio {res['flop_ratio']:.2f}x), "
            f"{res['threads']} thread(s). Command: `{command(suite, 'speed_slimmed_latency')}`",
            "",
        ]
        out += table(
            ["batch", "unpruned ms", "slimmed ms", "speedup", "FLOP ratio", "speedup / FLOP ratio"],
            [
                [
                    str(b),
                    _quartile_ms(res[f"batch{b}"], "before"),
                    _quartile_ms(res[f"batch{b}"], "after"),
                    f"{res[f'batch{b}']['speedup']:.2f}x",
                    f"{res['flop_ratio']:.2f}x",
                    f2(res[f"batch{b}"]["speedup_over_flop_ratio"]),
                ]
                for b in (1, 64)
            ],
        )
        out += _latency_variants(res)
    out += ["", "#### Study: `netslim.slim` vs plan + apply (FLOP counting)", ""]
    res = ok(results, "speed_slim_counting")
    out += [absent(suite, results, "speed_slim_counting")] if res is None else slim_counting_table(res, suite)
    out += ["", "#### Study: INT8 vs float (onnxruntime)", ""]
    res = ok(results, "speed_int8")
    out += [absent(suite, results, "speed_int8")] if res is None else int8_table(res, suite)
    out += ["", "#### Demo wall time", ""]
    res = ok(results, "speed_demo")
    out.append(
        absent(suite, results, "speed_demo")
        if res is None
        else f"`netslim demo`: {res['seconds']:.1f} s. Command: `{command(suite, 'speed_demo')}`"
    )
    out += [
        "",
        f"Paper's numbers ({paper.SPEED_SOURCE}): slimming Table 6, VGG on a GTX 1080, "
        f"{paper.SLIMMING_TABLE6['baseline_s_per_iter']} s/iter baseline vs "
        f"{paper.SLIMMING_TABLE6['pruned70_s_per_iter']} s/iter 70% pruned; Deep Compression, sparse FC "
        f"on a Core i7 at batch 1: {paper.DC_SPARSE_FC_CPU_SPEEDUP_BATCH1:g}x faster on average, slower at "
        "batch 64.",
    ]
    return [*out, ""]


def _ratio(entry: dict[str, Any] | None) -> str:
    """``0.45x (0.41-0.50)``: a ratio of medians with its quartile range, marked when noisy."""
    if not entry:
        return "-"
    text = f"{entry['ratio']:.2f}x ({entry['low']:.2f}-{entry['high']:.2f})"
    return text + _noisy(entry.get("noisy", False))


def slim_vs_tp_table(res: dict[str, Any], suite: str) -> list[str]:
    """Per model: slim and TP times, slim/TP with its range, parameters each kept; the target verdict."""
    if res.get("skipped"):
        return [f"Skipped: {res['skipped']}. Command: `{command(suite, 'speed_slim_vs_tp')}`"]
    rows = []
    for c in res["cases"]:
        if "error" in c:
            rows.append([c["model"], c["source"], c["error"].replace("|", "/"), "-", "-", "-"])
            continue
        rows.append(
            [
                c["model"],
                c["source"],
                _ms(c["slim"]),
                _ms(c["tp"]),
                _ratio(c["slim_over_tp"]),
                f"{n(c['params_kept_slim'])} / {n(c['params_kept_tp'])} of {n(c['params'])}",
            ]
        )
    return [
        f"Input {res['input']}, ratio {res['ratio']}, {res['threads']} thread, {res['repeats']} interleaved "
        f"repeats; torch-pruning {res['torch_pruning']}. Timed: {res['timed']}. BN scales: {res['gammas']}. "
        f"Median slim/TP {f2(res['median_ratio'])}, worst {f2(res['max_ratio'])}; target {res['target']}: "
        f"{_verdict(res)}. {_load_line(res)} Command: `{command(suite, 'speed_slim_vs_tp')}`",
        "",
        *table(
            ["model", "built from", "netslim.slim", "torch-pruning", "slim / TP", "params kept slim / TP"],
            rows,
        ),
    ]


def overhead_table(res: dict[str, Any], suite: str) -> list[str]:
    """Per sparsity mode: plain vs hooked step, the hooks alone, and the overhead against the target."""
    rows = [
        [
            r["mode"],
            str(r["bn_channels"]),
            _ms(r["plain_step"]),
            _ms(r["hooked_step"]),
            _ratio(r["steps_ratio"]),
            f"{r['hooks_alone_ms']:.3f} ms",
            f"{100 * r['overhead_hooks_alone']:.2f}%",
            "yes" if r["target_met"] else "NO",
        ]
        for r in res["rows"]
    ]
    return [
        f"{res['model']} width {res['width']}, batch {res['batch']}, {res['steps_each']} interleaved steps "
        f"each, {res['threads']} thread. Target: {res['target']}: {_verdict(res)}. {_load_line(res)} "
        f"Command: `{command(suite, 'speed_sparsity_overhead')}`",
        "",
        *table(
            [
                "mode",
                "BN channels",
                "plain step",
                "step + hooks",
                "hooked / plain",
                "hooks alone",
                "overhead (hooks alone)",
                "<= 2%",
            ],
            rows,
        ),
    ]


def _quartile_ms(cell: dict[str, Any], side: str) -> str:
    """``median (IQR q1-q3)`` in ms from the layout study's pooled samples; never a bare median."""
    q = cell.get(f"{side}_iqr_ms")
    median = cell[f"{side}_ms"]
    return f2(median) + (f" (IQR {q[0]:.2f}-{q[1]:.2f})" if q else " (no spread)")


def _ms(d: dict[str, Any] | None) -> str:
    """A stored latency with its spread, marked when noisy (never a bare number)."""
    from netslim.measurement.latency import format_latency

    return format_latency(d).replace("|", "/")


def _spread(values: list[float] | None) -> str:
    """Per-process values, lowest first, or '-' for a one-process row."""
    return "-" if not values else ", ".join(f"{v:.2f}" for v in sorted(values))


def _noisy(flag: bool) -> str:
    return " (noisy)" if flag else ""


def form_table(res: dict[str, Any], suite: str) -> list[str]:
    """Speedup / FLOP ratio per batch size: plain NCHW models vs both models in netslim.inference_form."""
    rows = []
    for b, c in res["batches"].items():
        rows.append(
            [
                str(b),
                _ms(c["unpruned_plain"]),
                _ms(c["slimmed_plain"]),
                _ms(c["unpruned_form"]),
                _ms(c["slimmed_form"]),
                f2(c["plain_speedup_over_flop_ratio"]) + _noisy(c["noisy"]),
                f2(c["form_speedup_over_flop_ratio"]) + _noisy(c["noisy"]),
                _spread(c.get("form_speedup_over_flop_ratio_per_process")),
            ]
        )
    runs = res.get("processes", 1)
    how = (
        f"median over {runs} fresh processes (timings shown: the median process)"
        if runs > 1
        else "one process"
    )
    return [
        f"{res['model']}; FLOPs {n(res['flops_before'])} -> {n(res['flops_after'])} (ratio "
        f"{res['flop_ratio']:.2f}x), {res['threads']} thread, all four timed interleaved, {how}. "
        "Inference form: "
        f"unpruned {res['forms']['unpruned']}, slimmed {res['forms']['slimmed']}. Target: {res['target']}: "
        f"{_verdict(res)}. {_load_line(res)} Command: `{command(suite, 'speed_inference_form')}`",
        "",
        *table(
            [
                "batch",
                "unpruned plain",
                "slimmed plain",
                "unpruned inference form",
                "slimmed inference form",
                "plain speedup / FLOP ratio",
                "inference form speedup / FLOP ratio",
                "per process",
            ],
            rows,
        ),
    ]


def sparse_table(res: dict[str, Any], suite: str) -> list[str]:
    """One line per grid cell: the choice, converted / unconverted and converted / torch CSR."""
    rows = [
        [
            c["shape"],
            f"{100 * c['density']:.0f}%",
            str(c["batch"]),
            str(c["threads"]),
            c["backend"],
            _ms(c["unconverted"]),
            _ms(c["converted"]),
            _ms(c["torch_csr"]) if c["torch_csr"] else "-",
            f"{c['converted_over_unconverted']:.2f}x" + _noisy(c["noisy"]),
            "-"
            if c["converted_over_torch_csr"] is None
            else f"{c['converted_over_torch_csr']:.2f}x"
            + (" (clearly slower)" if c.get("slower_than_torch_csr") else "")
            + (" (same kernel)" if c.get("same_kernel_as_torch_csr") else "")
            + (" (re-timed 4x)" if c.get("second_look") else ""),
            "yes" if c.get("sparse_wins", c["backend"] != "dense") else "",
        ]
        for c in res["cells"]
    ]
    w = res["worst_cell"]
    return [
        f"Worst converted / unconverted: {res['worst_ratio']:.2f}x ({w['shape']} at "
        f"{100 * w['density']:.0f}%, "
        f"batch {w['batch']}, {w['threads']} thread(s), {w['backend']}); {res['cells_over_1_05']} of "
        f"{len(res['cells'])} cells over 1.05x; sparse chosen in {res['sparse_cells']} cells; sparse wins in "
        f"{res.get('sparse_win_cells', res['sparse_cells'])} cells, "
        f"{res['sparse_cells_slower_than_torch_csr']} of them clearly slower than torch CSR. "
        f"Target: {res['target']}: {_verdict(res)}. {_load_line(res)} "
        f"Command: `{command(suite, 'speed_sparse_inference')}`",
        "",
        *table(
            [
                "layer (in x out)",
                "density",
                "batch",
                "threads",
                "choice",
                "unconverted",
                "converted",
                "torch CSR",
                "converted / unconverted",
                "converted / torch CSR",
                "sparse wins",
            ],
            rows,
        ),
    ]


def slim_counting_table(res: dict[str, Any], suite: str) -> list[str]:
    """netslim.slim against plan + apply: the ratio should be ~1 now that FLOPs are counted lazily."""
    rows = [
        [
            c["model"],
            f"{c['ratio']}",
            _ms(c["plan_apply"]),
            _ms(c["slim"]),
            f"{c['slim_over_engine']:.2f}x",
            "yes" if c["flops_after_matches_measure"] else "NO",
        ]
        for c in res["cases"]
    ]
    return [
        f"{res['threads']} thread, interleaved. Command: `{command(suite, 'speed_slim_counting')}`",
        "",
        *table(["model", "ratio", "plan + apply", "slim", "slim / (plan + apply)", "FLOPs = measure"], rows),
    ]


def int8_table(res: dict[str, Any], suite: str) -> list[str]:
    """Float and INT8 latency per batch size; INT8 shown as faster only where measured so."""
    rows = []
    for c in res["cases"]:
        for b, ratio in c["int8_over_float"].items():
            verdict = "faster" if c["int8_faster"][b] else "not faster"
            rows.append([c["model"], str(b), _ms(c["float"][b]), _ms(c["int8"][b]), f"{ratio:.2f}x", verdict])
    return [
        f"{res['quantization']}; {res['threads']} thread; float and INT8 timed interleaved. "
        f"Command: `{command(suite, 'speed_int8')}`",
        "",
        *table(["model", "batch", "float", "INT8", "INT8 / float", "INT8 measured"], rows),
    ]


# ---------------------------------------------------------------- channel gates
def _strength(s: float | str) -> str:
    return f"{s:g}" if isinstance(s, int | float) else str(s)


def gates_section(suite: str, results: Results) -> list[str]:
    """The ``gates_normfree`` row: baseline, gated + L1, after the cut and fine-tuned, on a norm-free net."""
    name = "gates_normfree"
    out, r = section(suite, results, name, "Channel gates on a norm-free net")
    if r is None:
        return out
    b, a = r["baseline"], r["after"]
    out += [
        f"{r['model']}, width {r['width']}: trained plainly (baseline) and with `netslim.add_channel_gates` "
        f"+ L1 {_strength(r['sparsity'])} on the gates ({r['epochs']} epoch(s) each, same initial weights), "
        "then "
        f"{r['pruned_channels']}/{r['total_channels']} gated channels cut ({round(100 * r['ratio'])}%) "
        f"with the gates folded into the convolutions ({r['gate_modules_after']} gate modules left) and "
        f"fine-tuned. Command: `{command(suite, name)}`",
        "",
    ]
    cut = [pruned_pct(b["params"], a["params"]), pruned_pct(b["flops"], a["flops"])]
    rows = [
        ["baseline (no gates, no L1)", f2(r["test_error_baseline"]), n(b["params"]), n(b["flops"])],
        # the gated model is the baseline's architecture plus one scale per gated channel
        ["gated + L1 on the gates", f2(r["test_error_gated"]), f"{n(b['params'])} + gates", n(b["flops"])],
        [f"after the {round(100 * r['ratio'])}% cut", f2(r["test_error_pruned"]), *cut],
        [
            f"fine-tuned {r['finetune_epochs']} epoch(s)"
            + (" with distillation" if r.get("distill") else ""),
            f2(r["test_error_finetuned"]),
            *cut,
        ],
    ]
    out += table(["model", "test error %", "params (pruned)", "FLOPs (pruned)"], rows)
    return [*out, ""]


# ---------------------------------------------------------------- plots and page
def _channels_plot(suite: str, results: Results, img: Path) -> list[str]:
    res = ok(results, "slim_vgg_70")
    widths = (res or {}).get("layer_widths") or {}
    if not widths:
        return []

    if isinstance(widths, dict):  # older results: a name -> [before, after] object, keys sorted by name
        key = lambda k: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k)]  # noqa: E731
        widths = [[k, *widths[k]] for k in sorted(widths, key=key)]

    def draw(ax: Any) -> None:
        names = [w[0] for w in widths]
        before = [w[1] for w in widths]
        after = [w[2] for w in widths]
        xs = range(len(names))
        ax.bar(xs, before, color="#cccccc", label="before")
        ax.bar(xs, after, color="#1f77b4", label="kept")
        ax.set_xticks(list(xs), names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("channels")
        ax.legend()

    png = plot(img / f"{suite}-vgg70-channels.png", draw)
    return ["### Channels kept per layer (VGG, 70%)", "", f"![channels kept]({png})", ""] if png else []


def machine_line(results: Results) -> str:
    """The machine of a suite's rows (the first stored row's)."""
    rec = next(iter(results.values()))
    m = rec.get("machine", {})
    return (
        f"Machine: {m.get('cpu_count')} CPU cores, torch threads {m.get('torch_threads')}, torch "
        f"{m.get('torch')}, Python {m.get('python')}, {m.get('platform')}; CUDA: {m.get('cuda') or 'none'}."
    )


def render(results_dir: Path, docs_dir: Path) -> Path:
    """Write ``docs_dir/RESULTS.md`` and plots in ``docs_dir/img`` from ``results_dir``; returns its path."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    img = docs_dir / "img"
    lines = [
        "# netslim results",
        "",
        "Generated by `python -m benchmarks.run` from the JSON under `benchmarks/results/<suite>/`; do not "
        "edit by hand. Every measured row names the command that produced it. The paper's figures are in "
        'separate tables labelled "Paper\'s numbers". Quick suite: `make bench-quick` (about 40 minutes on '
        "2 CPU cores); full: "
        "`make bench-full` (hours on CPU, resumable: finished rows are skipped).",
        "",
    ]
    lines += standard_section(results_dir, load_results(results_dir, "standard"), img)
    present = [(s, load_results(results_dir, s)) for s in SUITES]
    present = [(s, r) for s, r in present if r]
    if not present and len(lines) < 10:
        lines += [
            f"No results yet: not run yet: `python -m benchmarks.run --suite {s}`" for s in ("quick", "full")
        ]
        lines.append("")
    for suite, results in present:
        total = sum(float(r.get("seconds", 0)) for r in results.values())
        lines += [
            f"## Suite `{suite}`",
            "",
            machine_line(results),
            f"Data set: {_dataset(results)}. Rows stored: {len(results)}, their run time "
            f"{total / 60:.1f} min.",
            "",
        ]
        if suite == "smoke":
            lines += [
                "Smoke rows run a few batches to keep the scripts working; their figures mean nothing.",
                "",
            ]
        lines += slimming_section(suite, results, img)
        lines += _channels_plot(suite, results, img)
        lines += weights_section(suite, results)
        lines += speed_section(suite, results)
        lines += gates_section(suite, results)
    lines += ["## Paper's numbers", "", *slimming_paper_section()]
    out = docs_dir / "RESULTS.md"
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


def _dataset(results: Results) -> str:
    names = sorted(
        {
            str(r["result"].get("dataset"))
            for r in results.values()
            if r.get("status") == "ok" and "dataset" in r.get("result", {})
        }
    )
    return ", ".join(names) or "-"
