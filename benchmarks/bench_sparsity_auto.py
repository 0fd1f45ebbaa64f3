"""Fixed L1 strengths against ``BNSparsity(model, "auto", target=...)`` in a short sparsity run.

For each strength: train (SGD, cosine lr, bf16 autocast + channels_last on CPU) with BN sparsity, then
report the near-zero share at the end (see :func:`netslim.slimming.sparsity.near_zero_stats`), the
validation accuracy before the cut, the validation accuracy right after a global cut at ``--ratio``
(no fine-tuning), the plan's cut readiness and the wall time.

Run (a few CPU-minutes per strength)::

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.bench_sparsity_auto \
        --strengths 1e-4 1e-3 5e-3 auto --epochs 5

Writes one JSON line per strength to ``--out`` and prints a markdown table. ``--overhead`` instead times
the per-step cost of the L1 term (fixed subgradient, fixed proximal, auto) against a plain SGD step on the
same model, interleaved in one process (medians), plus the hook alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def run_one(strength: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one model with ``strength`` (a float or "auto"), cut it, and return the row."""
    import netslim
    from netslim.data import get_loaders
    from netslim.models import create
    from netslim.slimming.sparsity import BNSparsity
    from netslim.train import TrainConfig, Trainer
    from netslim.train.trainer import evaluate

    data = get_loaders(args.dataset, limit=args.limit, val_size=args.val_size, batch_size=args.batch_size)
    torch.manual_seed(args.seed)
    model = create(args.model, num_classes=10, in_channels=1, input_size=28, width=args.width)
    s: Any = "auto" if strength == "auto" else float(strength)
    kwargs: dict[str, Any] = {"target": args.ratio} if s == "auto" else {}
    sparsity = BNSparsity(model, s, mode=args.mode, hist_file=None, **kwargs)
    if args.trace:
        sparsity.trace = []
    config = TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        schedule="cosine",
        amp=True,
        channels_last=True,
        seed=args.seed,
        progress=False,
    )
    start = time.perf_counter()
    history = Trainer(model, data.train, data.val, config=config, callbacks=[sparsity], device="cpu").fit()
    seconds = time.perf_counter() - start
    model = model.to(memory_format=torch.contiguous_format).eval()
    before = evaluate(model, data.val, "cpu")["accuracy"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = netslim.slim(model, torch.zeros(1, 1, 28, 28), ratio=args.ratio)
    after = evaluate(result.model, data.val, "cpu")["accuracy"]
    readiness = result.plan.readiness.to_dict() if getattr(result.plan, "readiness", None) else None
    return {
        "strength": strength,
        "epochs": args.epochs,
        "mode": args.mode,
        "l1_strength": [h.get("l1_strength") for h in history],
        "near_zero_share": [h.get("near_zero_share") for h in history],
        "val_acc_before_cut": before,
        "val_acc_after_cut": after,
        "readiness": readiness,
        "readiness_warning": any("CutReadiness" in type(w.message).__name__ for w in caught),
        "seconds": seconds,
        "load": os.getloadavg(),
        "val_acc": [h.get("val_acc") for h in history],
        **({"trace": sparsity.trace} if args.trace else {}),
    }


def overhead(args: argparse.Namespace, rounds: int = 40) -> None:
    """Print the per-step cost of BNSparsity against a plain step (interleaved medians, hook alone)."""
    import statistics

    from torch import nn

    from netslim.models import create
    from netslim.slimming.sparsity import BNSparsity

    torch.manual_seed(args.seed)
    model = create(args.model, num_classes=10, in_channels=1, input_size=28, width=args.width).train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    x, y = torch.randn(args.batch_size, 1, 28, 28), torch.randint(0, 10, (args.batch_size,))
    auto = BNSparsity(model, "auto", target=args.ratio, hist_file=None)
    auto.set_budget(940, args.lr, 0.9)
    hooks: dict[str, Any] = {
        "plain": None,
        "fixed subgradient": BNSparsity(model, 1e-4, hist_file=None),
        "fixed proximal": BNSparsity(model, 1e-4, mode="proximal", hist_file=None),
        "auto subgradient": auto,
    }
    every, calls = 9, [0]  # the trainer's default interval for 5 epochs x 188 steps

    def hook_only(h: Any) -> None:
        h.apply_()
        h.step(opt)
        if h.auto:
            calls[0] += 1
            if calls[0] % every == 0:
                h.update_strength(0.5, lr=args.lr)

    def step(h: Any) -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        if h is not None:
            hook_only(h)
        opt.step()
        return time.perf_counter() - start

    names = list(hooks)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        step(hooks[n])
    for i in range(rounds):
        for n in names if i % 2 == 0 else names[::-1]:
            times[n].append(step(hooks[n]))
    base = statistics.median(times["plain"])
    print(
        f"load {os.getloadavg()}; plain step {base * 1e3:.1f} ms ({args.model} width {args.width}, batch "
        f"{args.batch_size}, torch threads {torch.get_num_threads()})"
    )
    for n in names[1:]:
        alone = []
        for _ in range(400):
            start = time.perf_counter()
            hook_only(hooks[n])
            alone.append(time.perf_counter() - start)
        med, mean = statistics.median(times[n]), statistics.fmean(alone)
        print(
            f"{n:18s} step {med * 1e3:.1f} ms ({med / base - 1:+.1%} interleaved); hook alone "
            f"{mean * 1e3:.3f} ms mean = {mean / base:.2%} of a plain step"
        )


def main(argv: list[str] | None = None) -> int:
    """Run every strength, append the rows to ``--out`` and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strengths", nargs="+", default=["1e-4", "1e-3", "5e-3", "auto"])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--model", default="vgg11")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--ratio", type=float, default=0.7)
    parser.add_argument("--mode", default="subgradient")
    parser.add_argument("--limit", type=int, default=12000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trace", action="store_true", help="record every controller update")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_sparsity_auto.jsonl")
    parser.add_argument("--overhead", action="store_true", help="time the per-step cost instead")
    args = parser.parse_args(argv)
    if args.overhead:
        overhead(args)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for strength in args.strengths:
        row = run_one(strength, args)
        rows.append(row)
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    print(
        f"\n{args.model} width {args.width}, {args.epochs} sparsity epochs, {args.mode}, cut {args.ratio}\n"
    )
    print(
        "| strength | final s | near zero | val acc before cut | right after cut | thr/median kept | warn | "
        "time (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        rd = r["readiness"] or {}
        print(
            f"| {r['strength']} | {r['l1_strength'][-1]:.3g} | {r['near_zero_share'][-1]:.1%} | "
            f"{r['val_acc_before_cut']:.2%} | {r['val_acc_after_cut']:.2%} | "
            f"{rd.get('threshold_ratio', float('nan')):.3g} | {r['readiness_warning']} | {r['seconds']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
