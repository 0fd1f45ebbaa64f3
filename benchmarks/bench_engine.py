"""Slimming engine speed against torch-pruning, and the CPU speedup of a 70%-slimmed VGG-19.

1. Time of ``netslim.plan`` + ``netslim.apply`` against torch-pruning's ``BNScalePruner`` (construction, which
   builds its dependency graph, plus ``step()``) at the paper's ratios: VGG-19 0.7, ResNet-164 0.4,
   DenseNet-40 0.4, CIFAR size (1x3x32x32). Median of repeats, each on a fresh copy of the model.
2. CPU latency of the 70%-slimmed VGG-19 against the unpruned one at batch 1 and 64, next to the FLOP ratio;
   the target is speedup >= 0.9 x FLOP ratio at batch 64. Measured per torch thread count, for the planner's
   ``round_to`` 1/4/8/16 and four inference settings applied to BOTH models alike: plain (NCHW), BN folded
   into the convs (:func:`netslim.fuse.fuse_bn`), ``channels_last``, and both. All models are timed
   interleaved in each of several runs; the JSON keeps medians, quartiles, per-run speedups and a
   torch.profiler per-op table at batch 64. Threads above the cores that are actually free measure
   scheduler contention (every op waits at its barrier for a descheduled thread), not the model.

No trained CIFAR model ships with netslim and sparsity training VGG-19 is not feasible on a CPU, so BN
scales come from a PROXY (stated in the output): a seeded bimodal mixture, |gamma| ~1e-3 (log-normal,
sigma 1) or ~0.3 (log-normal, sigma 0.5), the shape sparsity training produces, where the share of
near-zero scales grows with depth from 10% in the first BN to 95% in the last, as in the paper's Figure 5
(later VGG layers lose most of their channels). The kept channels per layer are in the JSON.

Run: ``.venv/bin/python -m benchmarks.bench_engine [--quick] [--only cut|latency] [--threads 1 2]
[--repeats N]``; torch-pruning is optional (``pip install --no-deps torch-pruning==1.6.1``). Results are
merged into ``benchmarks/results/bench_engine.json`` (a part not run is kept).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.suite import machine_info
from netslim.measurement.latency import forward_fn, num_threads, time_calls

RESULTS = Path(__file__).resolve().parent / "results"
CASES = (("vgg19", 0.7), ("preresnet164", 0.4), ("densenet40", 0.4))
ROUNDS = (1, 4, 8, 16)
B1_FACTOR = 4
# inference settings applied to BOTH models alike: name -> (fold BN into conv, channels_last)
SETTINGS = {"plain": (False, False), "fused_bn": (True, False), "channels_last": (False, True),
            "fused_bn+channels_last": (True, True)}
PROXY = ("|gamma| ~ 1e-3 * lognormal(0, 1) with probability p, else 0.3 * lognormal(0, 0.5); p grows "
         "linearly with BN depth from 0.10 to 0.95; seed 0")


def proxy_gammas(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN a bimodal |gamma| spread like a sparsity-trained network's (see :data:`PROXY`)."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) and m.affine]
    with torch.no_grad():
        for depth, m in enumerate(norms):
            p_small = 0.10 + 0.85 * depth / max(len(norms) - 1, 1)
            n = m.weight.numel()
            small = torch.rand(n, generator=g) < p_small
            low = 1e-3 * torch.exp(torch.randn(n, generator=g))
            high = 0.3 * torch.exp(0.5 * torch.randn(n, generator=g))
            m.weight.copy_(torch.where(small, low, high))
    return model.eval()


def median_time(fn: Callable[[], Any], repeats: int, setup: Callable[[], Any]) -> tuple[float, Any]:
    """Median wall seconds of ``fn(setup())`` over ``repeats`` runs (setup not timed); last result too."""
    times, out = [], None
    for _ in range(repeats):
        arg = setup()
        start = time.perf_counter()
        out = fn(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def netslim_cut(model: nn.Module, x: torch.Tensor, ratio: float) -> nn.Module:
    """plan + apply, the way ``netslim.slim`` runs them."""
    from netslim.slimming import api

    return api.apply(model, api.plan(model, x, ratio))


def tp_cut(model: nn.Module, x: torch.Tensor, ratio: float) -> nn.Module:
    """torch-pruning's BN-scale pruner, global threshold, final linear layer ignored."""
    import torch_pruning as tp

    last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.BNScalePruner(
        model, x, importance=tp.importance.BNScaleImportance(), pruning_ratio=ratio,
        global_pruning=True, ignored_layers=[last_linear],
    )
    pruner.step()
    return model


def bench_cut_times(repeats: int) -> list[dict[str, Any]]:
    """One row per model: netslim and torch-pruning median seconds and parameters kept."""
    from netslim.models import create

    try:
        import torch_pruning  # noqa: F401

        have_tp = True
    except ImportError:
        have_tp = False
    x = torch.zeros(1, 3, 32, 32)
    rows = []
    for name, ratio in CASES:
        base = proxy_gammas(create(name, num_classes=10, in_channels=3, input_size=32))
        row: dict[str, Any] = {"model": name, "ratio": ratio, "params": _params(base)}
        fresh = lambda b=base: copy.deepcopy(b)  # noqa: E731
        t, out = median_time(lambda m, r=ratio: netslim_cut(m, x, r), repeats, fresh)
        row.update(netslim_s=t, netslim_params=_params(out))
        if have_tp:
            try:
                t, out = median_time(lambda m, r=ratio: tp_cut(m, x, r), repeats, fresh)
                row.update(tp_s=t, tp_params=_params(out), ratio_netslim_over_tp=row["netslim_s"] / t)
            except Exception as exc:  # report, don't hide, a failure of the other library
                row["tp_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        rows.append(row)
    return rows


def _variant(model: nn.Module, fuse: bool, channels_last: bool) -> nn.Module:
    """``model`` as a user would run it for inference: BN folded into the convs and/or NHWC weights."""
    from netslim.fuse import fuse_bn

    out = fuse_bn(model) if fuse else copy.deepcopy(model).eval()
    return out.to(memory_format=torch.channels_last) if channels_last else out


def _inputs(batch: int, channels_last: bool) -> torch.Tensor:
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def slimmed_vgg(rounds: tuple[int, ...] = ROUNDS) -> tuple[nn.Module, dict[int, nn.Module]]:
    """The proxy-gamma VGG-19 and its 70%-slimmed versions, one per planner ``round_to``."""
    from netslim.models import create
    from netslim.slimming import api

    x = torch.zeros(1, 3, 32, 32)
    base = proxy_gammas(create("vgg19", num_classes=10, in_channels=3, input_size=32))
    slims = {r: api.apply(copy.deepcopy(base), api.plan(base, x, 0.7, round_to=r)).eval() for r in rounds}
    return base, slims


def _static(base: nn.Module, slims: dict[int, nn.Module]) -> dict[str, Any]:
    from netslim.measurement.api import measure

    x = torch.zeros(1, 3, 32, 32)
    before = measure(base, x, latency=False, file_size=False)
    rows = {}
    for r, m in slims.items():
        after = measure(m, x, latency=False, file_size=False)
        rows[r] = {"flops_after": after["flops"], "flop_ratio": before["flops"] / after["flops"],
                   "params_after": after["params"],
                   "kept_channels": [c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d)]}
    return {"flops_before": before["flops"], "params_before": before["params"], "rounds": rows}


def _time_setting_grid(base: nn.Module, slims: dict[int, nn.Module], batch: int, runs: int,
                       repeats: int) -> dict[tuple[str, str], list[list[float]]]:
    """Per (setting, model) the samples of each run; all models of all settings interleaved in every run."""
    keys, fns = [], []
    for setting, (fuse, nhwc) in SETTINGS.items():
        x = _inputs(batch, nhwc)
        for key, model in (("base", base), *((f"r{r}", m) for r, m in slims.items())):
            keys.append((setting, key))
            fns.append(forward_fn(_variant(model, fuse, nhwc), (x,)))
    samples: dict[tuple[str, str], list[list[float]]] = {k: [] for k in keys}
    for run in range(runs):
        for k, t in zip(keys, time_calls(fns, repeats, warmup=2 if run == 0 else 1), strict=True):
            samples[k].append(t)
    return samples


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]]
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def _cell(before: list[list[float]], after: list[list[float]], flop_ratio: float) -> dict[str, Any]:
    """Medians over all samples, the speedup of each run (ratio of that run's medians) and its spread."""
    pooled_b, pooled_a = list(itertools.chain(*before)), list(itertools.chain(*after))
    per_run = [statistics.median(b) / statistics.median(a) for b, a in zip(before, after, strict=True)]
    speedup = statistics.median(per_run)
    return {"before_ms": statistics.median(pooled_b), "after_ms": statistics.median(pooled_a),
            "before_iqr_ms": _quartiles(pooled_b), "after_iqr_ms": _quartiles(pooled_a),
            "speedup": speedup, "speedup_runs": per_run,
            "speedup_min": min(per_run), "speedup_max": max(per_run),
            "speedup_over_flop_ratio": speedup / flop_ratio}


def profile_ops(model: nn.Module, batch: int = 64, channels_last: bool = False,
                top: int = 6) -> dict[str, float]:
    """Self-CPU ms per forward of the ``top`` costliest aten ops (torch.profiler; 3 forwards, 1 warm-up)."""
    from torch.profiler import ProfilerActivity, profile

    x = _inputs(batch, channels_last)
    with torch.inference_mode():
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                model(x)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {e.key: e.self_cpu_time_total / 3 / 1e3 for e in ops}


def best_variant(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """The variant whose WORST run has the highest batch-64 speedup / FLOP ratio (a noisy run can't win)."""
    return max(variants, key=lambda v: v["batch64"]["speedup_min"] / v["flop_ratio"])


def bench_latency(repeats: int, threads: tuple[int, ...] = (1, 2), runs: int = 3,
                  rounds: tuple[int, ...] = ROUNDS, profile: bool = True) -> dict[str, Any]:
    """Latency and FLOPs of the unpruned and the 70%-slimmed VGG-19 at batch 1 and 64, per inference setting.

    ``repeats`` timed forwards per model at batch 64 (x :data:`B1_FACTOR` at batch 1) are split over
    ``min(runs, repeats)`` runs; every run interleaves all models of all settings (:data:`SETTINGS`: plain,
    BN folded, channels_last, both) and the slimmed models of every planner ``round_to`` in ``rounds``, so
    machine load hits them alike. The speedup
    of a run is the ratio of its medians; reported: the median over runs, its min/max, and medians and
    quartiles of the pooled samples. The top-level keys (``batch1``, ``batch64``, ``target_met_batch64``)
    are the plain slimmed model (round_to 1, NCHW, BN unfused) at ``threads[0]``; ``variants`` has every
    setting x round_to x thread count, ``best_batch64`` the one picked by :func:`best_variant`.
    """
    base, slims = slimmed_vgg(rounds)
    static = _static(base, slims)
    runs = max(1, min(runs, repeats))
    per_run = max(1, repeats // runs)
    variants = []
    for t in threads:
        with num_threads(t):
            # a batch-1 forward is ~1/15 of a batch-64 one and far noisier, so it gets more repeats
            cells = {b: _time_setting_grid(base, slims, b, runs, per_run * (B1_FACTOR if b == 1 else 1))
                     for b in (1, 64)}
        for setting, (fuse, nhwc) in SETTINGS.items():
            for r in rounds:
                fr = static["rounds"][r]["flop_ratio"]
                row: dict[str, Any] = {"setting": setting, "fuse_bn": fuse, "channels_last": nhwc,
                                       "round_to": r, "threads": t, "flop_ratio": fr}
                for b in (1, 64):
                    row[f"batch{b}"] = _cell(cells[b][(setting, "base")], cells[b][(setting, f"r{r}")], fr)
                row["target_met_batch64"] = row["batch64"]["speedup"] >= 0.9 * fr
                variants.append(row)
    head = next(v for v in variants if v["setting"] == "plain" and v["round_to"] == rounds[0]
                and v["threads"] == threads[0])
    first = static["rounds"][rounds[0]]
    out: dict[str, Any] = {
        "model": "vgg19, 70% of BN channels pruned (netslim.plan global threshold), CIFAR input 3x32x32",
        "gammas": "PROXY, not a trained network: " + PROXY + ". A sparsity-trained CIFAR VGG-19 is not "
                  "feasible on this CPU machine; the kept-channel profile (kept_channels) drives the result.",
        "flops_before": static["flops_before"], "flops_after": first["flops_after"],
        "flop_ratio": first["flop_ratio"], "params_before": static["params_before"],
        "params_after": first["params_after"], "threads": head["threads"],
        "headline": "plain slimmed model: round_to 1, NCHW, BN unfused, first thread count",
        "batch1": head["batch1"], "batch64": head["batch64"],
        "target_met_batch64": head["target_met_batch64"],
        "target": "batch-64 speedup >= 0.9 x FLOP ratio",
        "repeats_per_run": per_run, "batch1_repeats_per_run": per_run * B1_FACTOR, "runs": runs,
        "threads_tried": list(threads),
        "settings": {k: {"fuse_bn": f, "channels_last": c} for k, (f, c) in SETTINGS.items()},
        "rounds": static["rounds"], "variants": variants,
        "best_batch64": best_variant(variants),
        "target_met_any": [f"{v['setting']} round_to={v['round_to']} threads={v['threads']}"
                           for v in variants if v["target_met_batch64"]],
    }
    if profile:
        with num_threads(threads[0]):
            out["op_profile_batch64_ms"] = {
                f"{setting}/{name}": profile_ops(_variant(m, fuse, nhwc), 64, nhwc)
                for setting, (fuse, nhwc) in (("plain", SETTINGS["plain"]),
                                              ("fused_bn+channels_last", SETTINGS["fused_bn+channels_last"]))
                for name, m in (("unpruned", base), (f"slimmed_r{rounds[0]}", slims[rounds[0]]))}
    return out


def _cut_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | ratio | params | netslim plan+apply (s) | torch-pruning (s) | netslim/TP | "
             "params kept netslim / TP |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        tp_s = f"{r['tp_s']:.3f}" if "tp_s" in r else r.get("tp_error", "not installed")
        ratio = f"{r['ratio_netslim_over_tp']:.2f}" if "tp_s" in r else "-"
        kept = f"{r['netslim_params'] / r['params']:.1%} / " + (
            f"{r['tp_params'] / r['params']:.1%}" if "tp_params" in r else "-")
        lines.append(f"| {r['model']} | {r['ratio']} | {r['params']:,} | {r['netslim_s']:.3f} | {tp_s} | "
                     f"{ratio} | {kept} |")
    return lines


def _latency_table(lat: dict[str, Any]) -> list[str]:
    lines = [f"VGG-19 70% slimmed; BN scales: {lat['gammas']}", "",
             f"FLOPs {lat['flops_before']:.3g} -> {lat['flops_after']:.3g} (ratio {lat['flop_ratio']:.2f}x) "
             f"at round_to 1; {lat['runs']} runs x {lat['repeats_per_run']} interleaved repeats; speedup = "
             "median over runs of (unpruned median / slimmed median), [min-max over runs]", "",
             "| threads | setting | round_to | FLOP ratio | b1 ms unpruned -> slimmed | b1 speedup | "
             "b64 ms unpruned -> slimmed | b64 speedup | b64 speedup / FLOP ratio | target |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for v in lat["variants"]:
        c1, c64 = v["batch1"], v["batch64"]
        lines.append(
            f"| {v['threads']} | {v['setting']} | {v['round_to']} | {v['flop_ratio']:.2f}x | "
            f"{c1['before_ms']:.1f} -> {c1['after_ms']:.1f} | {c1['speedup']:.2f}x "
            f"[{c1['speedup_min']:.2f}-{c1['speedup_max']:.2f}] | "
            f"{c64['before_ms']:.0f} -> {c64['after_ms']:.0f} | {c64['speedup']:.2f}x "
            f"[{c64['speedup_min']:.2f}-{c64['speedup_max']:.2f}] | {c64['speedup_over_flop_ratio']:.2f} | "
            f"{'met' if v['target_met_batch64'] else 'not met'} |")
    head = "met" if lat["target_met_batch64"] else "NOT met"
    lines += ["", f"target ({lat['target']}), plain slimmed model at {lat['threads']} thread(s): {head}; "
              f"met by {len(lat['target_met_any'])} of {len(lat['variants'])} variants: "
              f"{'; '.join(lat['target_met_any']) or 'none'}"]
    for name, ops in lat.get("op_profile_batch64_ms", {}).items():
        lines.append(f"- batch-64 self-CPU ms per forward, {name}: "
                     + ", ".join(f"{k} {ms:.1f}" for k, ms in ops.items()))
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The results present in ``result`` (cut times and/or latency) as markdown tables."""
    m = result["machine"]
    lines = [f"machine: {m['cpu_count']} cores, torch {m['torch']}", f"BN scale proxy: {result['proxy']}", ""]
    if "cut_times" in result:
        lines += [*_cut_table(result["cut_times"]), ""]
    if "latency" in result:
        lines += _latency_table(result["latency"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, merge its results into the JSON file (other parts kept) and print markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    parser.add_argument("--only", choices=("cut", "latency"), help="run one part; the file keeps the other")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch intra-op thread counts for the latency part (first = headline)")
    parser.add_argument("--repeats", type=int, help="latency: timed forwards per model and batch (all runs)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_engine.json")
    args = parser.parse_args(argv)
    cut_repeats, lat_repeats = (1, 3) if args.quick else (5, 30)
    lat_repeats = args.repeats or lat_repeats
    result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update(machine=machine_info(), proxy=PROXY)
    if args.only != "latency":
        result.update(quick=args.quick, repeats=cut_repeats, cut_times=bench_cut_times(cut_repeats))
    if args.only != "cut":
        result.update(latency_quick=args.quick, latency_repeats=lat_repeats,
                      latency=bench_latency(lat_repeats, threads=tuple(args.threads)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
