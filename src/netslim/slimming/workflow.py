"""The whole Network Slimming pipeline as one function: train with sparsity -> prune -> fine-tune -> report.

:func:`run_slimming` is what ``netslim slim`` and ``netslim demo`` run. It writes a run folder::

    run_dir/
      config.json          the SlimmingConfig of this run
      sparsity/            trainer folder of the sparsity run (checkpoint.pt, metrics, gamma_hist.jsonl)
      sparse.pt            the sparsity-trained, unpruned model (netslim.save format)
      plan.json            the pruning plan (a list of plans, one per pass, when passes > 1)
      pruned.pt            the model right after the (last) cut
      finetune/            trainer folder of the fine-tuning run
      finetuned.pt         the final model
      results.json         accuracy / params / FLOPs / CPU latency before, after the cut and after fine-tuning
      plots/               gamma histograms and channels kept per layer (when netslim.plots is available)

Fine-tuning defaults: lr 0.01 with a cosine schedule. The paper re-runs the full training schedule (lr 0.1,
divided by 10 at 50% and 75%), and the Rethinking code fine-tunes 40 epochs at a constant 1e-3. For the short
runs this function is mostly used for (a few epochs) 0.1 undoes much of what sparsity training learned and
1e-3 recovers too slowly from a 70% cut; 0.01 decayed to 0 sits between them. Set ``finetune`` to
``TrainConfig(epochs=160, lr=0.1, schedule="step")`` for the paper's schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from netslim.errors import NetslimError
from netslim.train.config import TrainConfig


def _default_finetune() -> TrainConfig:
    return TrainConfig(epochs=10, lr=0.01, schedule="cosine")


@dataclass
class SlimmingConfig:
    """Everything :func:`run_slimming` needs. JSON-serializable via :meth:`to_dict`.

    ``train`` is the sparsity-training schedule, ``finetune`` the fine-tuning one (see the module docstring
    for the choice of defaults). ``data_kwargs`` go to :func:`netslim.data.get_loaders` and
    ``model_kwargs`` to :func:`netslim.models.create` when the caller does not pass ready objects.
    """

    model: str = "vgg19"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar10"
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None  # a sparsity-trained netslim checkpoint: skip the first sparsity run
    # sparsity training
    sparsity: float = 1e-4
    sparsity_mode: Literal["subgradient", "proximal"] = "subgradient"
    sparsity_schedule: Literal["constant", "linear_decay"] = "constant"
    sparsity_exclude: list[str] = field(default_factory=list)
    channel_gates: bool = False  # netslim.add_channel_gates before each sparsity run (nets without BN)
    train: TrainConfig = field(default_factory=TrainConfig)
    # pruning
    ratio: float = 0.7
    passes: int = 1
    max_layer_ratio: float | None = None  # per-layer cap per pass; multi-pass uses 0.5 when None
    min_channels: int = 1
    scope: Literal["global", "local"] = "global"
    round_to: int = 1
    fold_beta: bool = True
    # fine-tuning
    finetune: TrainConfig = field(default_factory=_default_finetune)
    # reporting
    run_dir: str | None = None
    device: str | None = None
    compare_plain_cut: bool = True
    evaluate_test: bool = True
    latency: bool = True
    latency_repeats: int = 20
    plots: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise NetslimError(f"ratio must be in (0, 1), got {self.ratio}; 0.7 prunes 70% of the channels")
        if not isinstance(self.passes, int) or self.passes < 1:
            raise NetslimError(f"passes must be an integer >= 1, got {self.passes!r}")
        if self.max_layer_ratio is not None and not 0.0 < self.max_layer_ratio <= 1.0:
            raise NetslimError(f"max_layer_ratio must be in (0, 1], got {self.max_layer_ratio}")
        if self.min_channels < 1:
            raise NetslimError(f"min_channels must be >= 1, got {self.min_channels}")
        if self.sparsity < 0 or not math.isfinite(self.sparsity):
            raise NetslimError(f"sparsity must be >= 0, got {self.sparsity}")
        if self.scope not in ("global", "local"):
            raise NetslimError(f"scope must be 'global' or 'local', got {self.scope!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy."""
        d = asdict(self)
        d["train"] = self.train.to_dict()
        d["finetune"] = self.finetune.to_dict()
        return d


def _log(verbose: bool, text: str) -> None:
    if verbose:
        print(text, flush=True)


def _eval_device(config: SlimmingConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _example_inputs(data: Any) -> torch.Tensor:
    size = data.image_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)[-2:]
    return torch.zeros(1, int(data.in_channels), int(h), int(w))


def _measure(
    models: list[nn.Module], example: torch.Tensor, *, latency: bool, repeats: int = 20
) -> list[dict[str, Any]]:
    """Params, FLOPs and CPU latency (batch 1) of each model, latency repeats interleaved."""
    from netslim.measurement.api import compare_many

    cpu = [m.cpu().eval() for m in models]
    stats = compare_many(cpu, example, latency=latency, batch_sizes=(1,), repeats=repeats, file_size=False)
    return [
        {"params": s["params"], "flops": s["flops"], "latency_ms": s["latency_ms"].get(1)} for s in stats
    ]


def _save_json(path: Path, obj: Any) -> None:
    from netslim._atomic import atomic_write_json

    atomic_write_json(path, obj)


def _pct(before: float | None, after: float | None) -> str:
    if before is None or after is None or before == 0:
        return ""
    return f"{100.0 * (after - before) / before:+.1f}%"


def _fmt_count(v: float | None) -> str:
    if v is None:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:.0f}"


def format_table(results: dict[str, Any]) -> str:
    """The before/after markdown table printed at the end of :func:`run_slimming`."""
    b, a = results["before"], results["after"]
    rows = [("metric", "before", "after", "change"), ("---", "---:", "---:", "---:")]

    def acc(d: dict[str, Any], key: str) -> str:
        return "n/a" if d.get(key) is None else f"{100 * d[key]:.2f}%"

    for key, label in (("test_acc", "test accuracy"), ("val_acc", "val accuracy")):
        if b.get(key) is not None:
            diff = "" if a.get(key) is None else f"{100 * (a[key] - b[key]):+.2f} pt"
            rows.append((label, acc(b, key), acc(a, key), diff))
    pruned = results.get("after_prune", {})
    if pruned.get("test_acc") is not None or pruned.get("val_acc") is not None:
        key = "test_acc" if pruned.get("test_acc") is not None else "val_acc"
        rows.append((f"{key.split('_')[0]} accuracy right after the cut", acc(b, key), acc(pruned, key), ""))
    plain = results.get("plain_cut")
    if plain:
        key = "test_acc" if plain.get("test_acc") is not None else "val_acc"
        label = f"{key.split('_')[0]} accuracy, plain cut (no beta folding)"
        rows.append((label, acc(b, key), acc(plain, key), ""))
    rows.append(("params", _fmt_count(b["params"]), _fmt_count(a["params"]), _pct(b["params"], a["params"])))
    rows.append(("FLOPs", _fmt_count(b["flops"]), _fmt_count(a["flops"]), _pct(b["flops"], a["flops"])))
    lb, la = b.get("latency_ms"), a.get("latency_ms")
    if lb is not None and la is not None:
        rows.append(("CPU latency, batch 1", f"{lb:.2f} ms", f"{la:.2f} ms", _pct(lb, la)))
    return "\n".join(f"| {' | '.join(r)} |" for r in rows)


def _plots(run_dir: Path, sparsity_dirs: list[Path], plans: list[Any]) -> list[str]:
    """Gamma histograms per epoch and channels kept per layer, drawn by netslim.plots when it exists."""
    try:
        from netslim import plots
    except ImportError:
        return []
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written: list[str] = []
    for d in sparsity_dirs:
        records = plots.read_jsonl(d / "gamma_hist.jsonl") if (d / "gamma_hist.jsonl").is_file() else []
        if records:
            written.append(str(plots.gamma_histograms(records, out / f"{d.name}-gamma-hist.png")))
    first, last = plans[0].widths(), plans[-1].widths()
    widths = {name: (before, last.get(name, (before, after))[1]) for name, (before, after) in first.items()}
    if widths:
        written.append(str(plots.channels_per_layer(widths, out / "channels-kept.png")))
    return written


def run_slimming(
    config: SlimmingConfig,
    *,
    data: Any = None,
    model: nn.Module | None = None,
    verbose: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run sparsity training, pruning and fine-tuning as ``config`` says; returns the results dict.

    ``data`` (a :class:`netslim.data.DataBundle`) and ``model`` may be passed ready-made; otherwise they come
    from ``config.dataset``/``data_kwargs`` and ``config.model``/``model_kwargs``. With ``config.checkpoint``
    the model is loaded from that file (with ``model`` as the architecture for a class of your own) and the
    first sparsity run is skipped. The returned dict is what ``results.json`` holds: ``before`` (the
    sparsity-trained model), ``after_prune``, ``plain_cut``, ``after`` (fine-tuned), each with
    ``val_acc``/``test_acc``/``params``/``flops``/``latency_ms``; ``passes`` (per-pass history),
    ``files`` and ``table`` (the printed before/after table).
    """
    import netslim
    from netslim.slimming import api
    from netslim.slimming.gates import add_channel_gates, gated_layers
    from netslim.slimming.multipass import multipass_slim
    from netslim.slimming.sparsity import BNSparsity
    from netslim.train import Trainer, evaluate

    say = log or (lambda text: _log(verbose, text))
    start = time.perf_counter()
    run_dir = Path(config.run_dir or f"runs/slim-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    _save_json(run_dir / "config.json", config.to_dict())

    if data is None:
        from netslim.data import get_loaders

        data = get_loaders(config.dataset, **config.data_kwargs)
    if config.checkpoint is not None:
        model = netslim.load(config.checkpoint, model=model)
    elif model is None:
        from netslim.models import resolve  # a zoo name or a FILE.py:FUNC / pkg.mod:FUNC factory

        size = data.image_size if isinstance(data.image_size, int) else tuple(data.image_size)[-1]
        model = resolve(
            config.model,
            num_classes=data.num_classes,
            in_channels=data.in_channels,
            input_size=size,
            **config.model_kwargs,
        )
    example = _example_inputs(data)
    if config.channel_gates and not gated_layers(model):
        say(str(add_channel_gates(model, example)))
    device = _eval_device(config)
    files: dict[str, Any] = {"config": "config.json"}
    sparsity_dirs: list[Path] = []
    state: dict[str, Any] = {}

    def evaluate_fn(m: nn.Module) -> dict[str, Any]:
        m.to(device)
        out = {"val_acc": evaluate(m, data.val)["accuracy"] if data.val is not None else None}
        out["test_acc"] = evaluate(m, data.test)["accuracy"] if config.evaluate_test else None
        m.cpu()
        return out

    def suffix(index: int) -> str:
        return "" if config.passes == 1 else f"-pass{index + 1}"

    def train_fn(m: nn.Module, index: int, phase: str) -> nn.Module:
        if phase == "sparsity":
            say(f"== pass {index + 1}/{config.passes}: sparsity training (s={config.sparsity:g})")
            sub = run_dir / f"sparsity{suffix(index)}"
            if config.channel_gates and not gated_layers(m):
                say(str(add_channel_gates(m, example)))
            sparsity = BNSparsity(
                m,
                config.sparsity,
                mode=config.sparsity_mode,
                schedule=config.sparsity_schedule,
                exclude=config.sparsity_exclude or None,
            )
            Trainer(m, data.train, data.val, config=config.train, callbacks=[sparsity], run_dir=sub,
                    device=config.device).fit()
            sparsity_dirs.append(sub)
            m.cpu()
            name = f"sparse{suffix(index)}.pt"
            netslim.save(m, run_dir / name, extra={"stage": "sparsity", "pass": index + 1})
            files.setdefault("sparse", []).append(name)
        else:
            say(f"== pass {index + 1}/{config.passes}: fine-tuning ({config.finetune.epochs} epochs, "
                f"lr {config.finetune.lr:g})")
            sub = run_dir / f"finetune{suffix(index)}"
            Trainer(m, data.train, data.val, config=config.finetune, run_dir=sub, device=config.device).fit()
            m.cpu()
        return m

    def after_prune(before: nn.Module, plan: Any, pruned: nn.Module, index: int) -> dict[str, Any]:
        if index == 0:
            state["baseline"] = before
        state["plans"] = [*state.get("plans", []), plan.to_dict()]
        plan_obj: Any = state["plans"][0] if config.passes == 1 else state["plans"]
        _save_json(run_dir / "plan.json", plan_obj)
        netslim.save(pruned, run_dir / "pruned.pt", extra={"stage": "pruned", "pass": index + 1})
        if config.passes > 1:
            netslim.save(pruned, run_dir / f"pruned{suffix(index)}.pt", extra={"stage": "pruned"})
        say(str(plan))
        extra: dict[str, Any] = {}
        if config.compare_plain_cut and config.fold_beta:
            extra["plain_cut"] = evaluate_fn(api.apply(before, plan, fold_beta=False))
        return extra

    result = multipass_slim(
        model,
        example,
        passes=config.passes,
        ratio_per_pass=config.ratio,
        max_layer_ratio=config.max_layer_ratio if config.max_layer_ratio or config.passes == 1 else 0.5,
        train_fn=train_fn,
        evaluate_fn=evaluate_fn,
        measure_fn=lambda m: _measure([m], example, latency=False)[0],
        after_prune=after_prune,
        skip_first_sparsity=config.checkpoint is not None,
        fold_beta=config.fold_beta,
        scope=config.scope,
        min_channels=config.min_channels,
        round_to=config.round_to,
    )
    final = result.model
    netslim.save(final, run_dir / "finetuned.pt", extra={"stage": "finetuned"})
    files.update(plan="plan.json", pruned="pruned.pt", finetuned="finetuned.pt")

    baseline = state["baseline"]
    measured_before, measured_after = _measure(
        [baseline, final], example, latency=config.latency, repeats=config.latency_repeats
    )
    first, last = result.history[0], result.history[-1]
    before = {**first["trained"], **measured_before}
    after = {**last["finetuned"], **measured_after}
    results: dict[str, Any] = {
        "before": before,
        "after_prune": {**last["pruned"], "params": last["params_after"], "flops": last["flops_after"]},
        "plain_cut": last.get("plain_cut"),
        "after": after,
        "passes": result.history,
        "ratio": config.ratio,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds": time.perf_counter() - start,
    }
    if config.plots:
        files["plots"] = _plots(run_dir, sparsity_dirs, result.plans)
    results["files"] = files
    results["table"] = format_table(results)
    _save_json(run_dir / "results.json", results)
    say(results["table"])
    say(f"run folder: {run_dir}")
    return results

