"""Network Slimming rows (paper Table 1, Table 4 and the ratio sweep) at reduced scale on Fashion-MNIST.

Rows share training work through checkpoints in ``<work_dir>/<family>/``: ``baseline-<E>ep.pt`` (plain
training for E epochs) and ``sparse-auto-<E>ep.pt`` (sparsity training with netslim's budget-aware strength
aimed at the family's largest ratio, then BatchNorm statistics recomputed, as ``netslim slim --sparsity
auto`` does). A row that needs one trains it when it is missing, so any row can be run alone with
``--only``; interrupted trainings resume from the trainer's own checkpoint. Rows count params and FLOPs but
time nothing: they train beside other work, so latency lives in the speed rows, timed in a quiet window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.suite import RowContext, row

_BUNDLES: dict[tuple[Any, ...], Any] = {}
# netslim's short-run fine-tuning rate: restarting at the training rate (0.1) only pays with 15+ epochs (the
# standard suite); here 4 epochs at 0.1 left VGG-11 worse than right after its cut (14.53% vs 13.36%)
FINETUNE_LR = 0.01


@dataclass(frozen=True)
class Family:
    """A model family of the slimming table and its settings per suite (smoke, quick, full)."""

    key: str
    model: tuple[str, str, str]
    kwargs: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
    ratios: tuple[float, ...] = field(default_factory=tuple)
    epochs: tuple[int, int, int] = (1, 10, 40)  # baseline and sparsity training

    @property
    def sparsity(self) -> dict[str, Any]:
        """The sparsity recipe (:class:`BNSparsity` arguments): auto strength aimed at the largest ratio.

        The paper's fixed strengths (1e-5, 1e-4) leave no gamma near zero in these short budgets, so their
        cut reaches into the bulk (the ``slim_vgg_strengths`` row and the standard suite's study show it)."""
        return {"s": "auto", "mode": "proximal", "target": max(self.ratios)}


FAMILIES = {
    "vgg": Family(
        "vgg",
        ("vgg11", "vgg11", "vgg19"),
        ({"width": 0.125}, {"width": 0.25}, {"width": 0.5}),
        (0.7,),
    ),
    "preresnet": Family(
        "preresnet",
        ("preresnet", "preresnet", "preresnet"),
        ({"depth": 11, "width": 0.5}, {"depth": 20, "width": 0.25}, {"depth": 56}),
        (0.4, 0.6),
    ),
    "densenet": Family(
        "densenet",
        ("densenet", "densenet", "densenet"),
        ({"depth": 7, "growth": 4}, {"depth": 16, "growth": 8}, {"depth": 40, "growth": 12}),
        (0.4, 0.7),
        epochs=(1, 6, 40),
    ),
}


def load_data(
    ctx: RowContext, *, train_limit: tuple[int | None, int | None, int | None] = (128, 12000, None)
) -> Any:
    """The suite's data bundle (cached per process): tiny and few batches for smoke, a subset for quick."""
    from netslim.data import get_loaders

    limit = ctx.scale(*train_limit)
    key = (ctx.suite, ctx.dataset, ctx.data_dir, limit)
    if key not in _BUNDLES:
        _BUNDLES[key] = get_loaders(
            ctx.dataset,
            data_dir=ctx.data_dir,
            batch_size=ctx.scale(32, 64, 64),
            val_size=ctx.scale(64, 2000, 5000),
            seed=0,
            limit=limit,
            max_batches=ctx.scale(2, None, None),
            augment=ctx.suite != "smoke",
        )
    return _BUNDLES[key]


def example_input(data: Any) -> torch.Tensor:
    """One zero input of the data set's shape (batch 1)."""
    return torch.zeros(1, *data.input_shape)


def train_config(ctx: RowContext, epochs: int, **kw: Any) -> Any:
    """A TrainConfig for this suite: no progress bar, smoke capped at a few batches."""
    from netslim.train import TrainConfig

    return TrainConfig(epochs=epochs, progress=False, max_batches=ctx.scale(2, None, None), seed=0, **kw)


def test_error(model: nn.Module, data: Any) -> float:
    """Top-1 test error in percent."""
    from netslim.train import evaluate

    return 100.0 * (1.0 - evaluate(model.cpu(), data.test)["accuracy"])


def fit(
    model: nn.Module, data: Any, config: Any, run_dir: Path, callbacks: list[Any] | None = None
) -> list[dict[str, Any]]:
    """Train ``model`` in place, resuming from ``run_dir``'s checkpoint when an earlier run was cut off;
    returns the trainer's per-epoch history."""
    from netslim.train import Trainer

    resume = (run_dir / "checkpoint.pt").is_file()
    history = Trainer(
        model, data.train, data.val, config=config, callbacks=callbacks or [], run_dir=run_dir, device="cpu"
    ).fit(resume=resume)
    model.cpu()
    return history


def count(model: nn.Module, data: Any) -> dict[str, int]:
    """Params and FLOPs of ``model`` on one input of the data set's shape."""
    from netslim.measurement.api import measure as ns_measure

    m = ns_measure(model.eval(), example_input(data), latency=False, file_size=False)
    return {"params": int(m["params"]), "flops": int(m["flops"])}


def _describe(ctx: RowContext, fam: Family) -> dict[str, Any]:
    return {"model": ctx.scale(*fam.model), "model_kwargs": ctx.scale(*fam.kwargs), "dataset": ctx.dataset}


def _epochs(ctx: RowContext, fam: Family) -> int:
    return ctx.scale(*fam.epochs)


def checkpoint(ctx: RowContext, fam: Family, stage: str) -> Path:
    """Path of the family's ``baseline`` or ``sparse`` checkpoint, training it first when it is missing.

    The sparse net is trained with :attr:`Family.sparsity` and gets its BatchNorm statistics recomputed
    for its final weights (as ``netslim slim`` does), so its error and its cut are not read through stale
    running averages."""
    import netslim
    from netslim.models import create
    from netslim.pipelines.slimming import BN_RECALIBRATION
    from netslim.slimming.sparsity import BNSparsity
    from netslim.train import recalibrate_batchnorm

    folder = ctx.work_dir / fam.key
    # the name carries what the net depends on, so a work folder from other settings is never reused
    name = f"{'sparse-auto' if stage == 'sparse' else stage}-{_epochs(ctx, fam)}ep"
    path = folder / f"{name}.pt"
    if path.is_file():
        return path
    data = load_data(ctx)
    torch.manual_seed(0)
    model = create(
        ctx.scale(*fam.model),
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_shape[-1],
        **ctx.scale(*fam.kwargs),
    )
    callbacks = [BNSparsity(model, **fam.sparsity)] if stage == "sparse" else []
    run_dir = folder / f"{name}-run"
    fit(model, data, train_config(ctx, _epochs(ctx, fam), lr=0.1, schedule="cosine"), run_dir, callbacks)
    extra: dict[str, Any] = {"stage": stage, "suite": ctx.suite}
    if stage == "sparse":
        extra["bn_recalibration"] = recalibrate_batchnorm(model, data.train, BN_RECALIBRATION)
    folder.mkdir(parents=True, exist_ok=True)
    netslim.save(model, path, extra=extra)
    return path


def _trained_row(ctx: RowContext, fam: Family, stage: str) -> dict[str, Any]:
    import netslim
    from netslim.slimming.gammas import near_zero_stats

    data = load_data(ctx)
    model = netslim.load(checkpoint(ctx, fam, stage))
    out = {
        **_describe(ctx, fam),
        "stage": stage,
        "epochs": _epochs(ctx, fam),
        "test_error": test_error(model, data),
        **count(model, data),
        "threads": torch.get_num_threads(),
    }
    if stage == "sparse":
        out["sparsity"] = fam.sparsity
        gammas = torch.cat(
            [
                m.weight.detach().abs().flatten()
                for m in model.modules()
                if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) and m.weight is not None
            ]
        )
        out["near_zero_share"] = near_zero_stats(gammas)[0]
    return out


def _slim_row(ctx: RowContext, fam: Family, ratio: float) -> dict[str, Any]:
    """Prune the sparsity-trained model at ``ratio`` and fine-tune it (netslim's workflow)."""
    import netslim
    from netslim.pipelines.slimming import SlimmingConfig, run_slimming

    data = load_data(ctx)
    sparse = checkpoint(ctx, fam, "sparse")
    ft_epochs = ctx.scale(1, 4, 20)
    run_dir = ctx.work_dir / fam.key / f"slim{round(ratio * 100)}-auto"
    config = SlimmingConfig(
        model=ctx.scale(*fam.model),
        dataset=ctx.dataset,
        checkpoint=str(sparse),
        ratio=ratio,
        finetune=train_config(ctx, ft_epochs, lr=FINETUNE_LR, schedule="cosine"),
        run_dir=str(run_dir),
        device="cpu",
        latency=False,
        plots=False,
    )
    res = run_slimming(config, data=data, verbose=False)
    before, after = count(netslim.load(sparse), data), count(netslim.load(run_dir / "finetuned.pt"), data)

    def err(d: dict[str, Any] | None) -> float | None:
        return None if not d or d.get("test_acc") is None else 100.0 * (1.0 - d["test_acc"])

    first = res["passes"][0]
    return {
        **_describe(ctx, fam),
        "ratio": ratio,
        "sparsity": fam.sparsity,
        "finetune_epochs": ft_epochs,
        "test_error_sparse": err(res["before"]),
        "test_error_pruned": err(res["after_prune"]),
        "test_error_plain_cut": err(res["plain_cut"]),
        "test_error_finetuned": err(res["after"]),
        "params_before": before["params"],
        "params_after": after["params"],
        "flops_before": before["flops"],
        "flops_after": after["flops"],
        "readiness": first.get("readiness"),
        "warnings": first.get("warnings", []),
        "threads": torch.get_num_threads(),
        # a list keeps the model's layer order (the suite writes JSON objects with sorted keys)
        "layer_widths": [[k, *v] for k, v in (first.get("layer_widths") or {}).items()],
        "pruned_channels": first.get("pruned_channels"),
        "total_channels": first.get("total_channels"),
    }


def _register(fam: Family) -> None:
    row(f"slim_{fam.key}_baseline", "slimming")(lambda ctx, f=fam: _trained_row(ctx, f, "baseline"))
    row(f"slim_{fam.key}_sparse", "slimming")(lambda ctx, f=fam: _trained_row(ctx, f, "sparse"))
    for r in fam.ratios:
        row(f"slim_{fam.key}_{round(r * 100)}", "slimming")(lambda ctx, f=fam, r=r: _slim_row(ctx, f, r))


for _fam in FAMILIES.values():
    _register(_fam)


@row("slim_vgg_ratio_sweep", "slimming")
def ratio_sweep(ctx: RowContext) -> dict[str, Any]:
    """Test error of the sparsity-trained VGG cut at each ratio, no fine-tuning: folded beta vs plain cut."""
    import netslim
    from netslim.slimming import api

    fam = FAMILIES["vgg"]
    data = load_data(ctx)
    model = netslim.load(checkpoint(ctx, fam, "sparse"))
    x = example_input(data)
    probe = torch.randn(8, *data.input_shape, generator=torch.Generator().manual_seed(0))
    points = []
    for ratio in ctx.scale(
        (0.3, 0.7), tuple(r / 10 for r in range(1, 10)), tuple(r / 20 for r in range(2, 20))
    ):
        p = api.plan(model, x, ratio)
        folded = api.apply(model, p, fold_beta=True)
        interior = api.apply(model, p, fold_beta="interior")
        plain = api.apply(model, p, fold_beta=False)
        fe = api.folding_error(model, p, probe)
        points.append(
            {
                "ratio": ratio,
                "test_error_folded": test_error(folded, data),
                "test_error_folded_interior": test_error(interior, data),
                "test_error_plain_cut": test_error(plain, data),
                "output_error_folded": fe["folded"],
                "output_error_folded_interior": fe["folded_interior"],
                "output_error_plain_cut": fe["plain_cut"],
                "params": sum(q.numel() for q in folded.parameters()),
            }
        )
    return {**_describe(ctx, fam), "test_error_unpruned": test_error(model, data), "points": points}


@row("slim_vgg_multipass", "slimming")
def multipass(ctx: RowContext) -> dict[str, Any]:
    """Paper Table 4 layout: passes of (sparsity training,) a 50% cut capped at 50% per layer, fine-tuning."""
    from netslim.pipelines.slimming import SlimmingConfig, run_slimming

    fam = FAMILIES["vgg"]
    data = load_data(ctx)
    passes = ctx.scale(2, 3, 6)
    config = SlimmingConfig(
        model=ctx.scale(*fam.model),
        dataset=ctx.dataset,
        checkpoint=str(checkpoint(ctx, fam, "sparse")),
        ratio=0.5,
        passes=passes,
        max_layer_ratio=0.5,
        l1_strength="auto",
        sparsity_mode=fam.sparsity["mode"],
        train=train_config(ctx, ctx.scale(1, 2, 20), lr=0.01, schedule="cosine"),
        finetune=train_config(ctx, ctx.scale(1, 2, 20), lr=FINETUNE_LR, schedule="cosine"),
        run_dir=str(ctx.work_dir / fam.key / "multipass-auto"),
        device="cpu",
        latency=False,
        plots=False,
        compare_plain_cut=False,
    )
    res = run_slimming(config, data=data, verbose=False)
    base = res["passes"][0]
    rows = []
    for h in res["passes"]:
        rows.append(
            {
                "iter": h["pass"],
                "test_error_trained": 100.0 * (1.0 - h["trained"]["test_acc"]),
                "test_error_finetuned": 100.0 * (1.0 - h["finetuned"]["test_acc"]),
                "params": h["params_after"],
                "flops": h["flops_after"],
                "channels_pruned_pct": 100.0
                * (1.0 - (h["total_channels"] - h["pruned_channels"]) / base["total_channels"]),
                "params_pruned_pct": 100.0 * (1.0 - h["params_after"] / base["params_before"]),
                "flops_pruned_pct": 100.0 * (1.0 - h["flops_after"] / base["flops_before"])
                if h["flops_after"]
                else None,
            }
        )
    return {
        **_describe(ctx, fam),
        "passes": rows,
        "params_base": base["params_before"],
        "flops_base": base["flops_before"],
        "epochs_per_phase": config.finetune.epochs,
    }


# Fixed L1 strengths against BNSparsity("auto") (subgradient and proximal) in one short sparsity run each.
STRENGTHS: dict[str, dict[str, Any]] = {
    "1e-4": {"s": 1e-4},
    "1e-3": {"s": 1e-3},
    "5e-3": {"s": 5e-3},
    "auto (subgradient)": {"s": "auto", "mode": "subgradient"},
    "auto (proximal)": {"s": "auto", "mode": "proximal"},
}


@row("slim_vgg_strengths", "slimming")
def strengths(ctx: RowContext) -> dict[str, Any]:
    """Each L1 recipe of :data:`STRENGTHS` from the same initial weights: the near-zero share per epoch, the
    test error before and right after a 70% cut (no fine-tuning) and the plan's cut readiness."""
    import time
    import warnings

    import netslim
    from netslim import CutReadinessWarning
    from netslim.models import create
    from netslim.slimming.sparsity import BNSparsity

    fam, ratio = FAMILIES["vgg"], 0.7
    data = load_data(ctx)
    epochs = ctx.scale(1, 5, 15)
    labels = ctx.scale(("1e-3", "auto (proximal)"), tuple(STRENGTHS), tuple(STRENGTHS))
    recipes = []
    for label in labels:
        torch.manual_seed(0)
        model = create(
            ctx.scale(*fam.model),
            num_classes=data.num_classes,
            in_channels=data.in_channels,
            input_size=data.input_shape[-1],
            **ctx.scale(*fam.kwargs),
        )
        kwargs = dict(STRENGTHS[label])
        if kwargs["s"] == "auto":
            kwargs["target"] = ratio
        sparsity = BNSparsity(model, hist_file=None, **kwargs)
        config = train_config(ctx, epochs, lr=0.1, schedule="cosine", amp=True, channels_last=True)
        run_dir = ctx.work_dir / fam.key / f"strength-{label.replace(' ', '').replace('(', '-').strip(')')}"
        start = time.perf_counter()
        history = fit(model, data, config, run_dir, [sparsity])
        seconds = time.perf_counter() - start
        model = model.to(memory_format=torch.contiguous_format).eval()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = netslim.slim(model, example_input(data), ratio=ratio)
        readiness = getattr(result.plan, "readiness", None)
        recipes.append(
            {
                "recipe": label,
                "sparsity": kwargs,
                "l1_strength": [h.get("l1_strength") for h in history],
                "near_zero_share": [h.get("near_zero_share") for h in history],
                "val_acc": [h.get("val_acc") for h in history],
                "test_error_before_cut": test_error(model, data),
                "test_error_after_cut": test_error(result.model, data),
                "readiness": readiness.to_dict() if readiness is not None else None,
                "readiness_warning": any(issubclass(w.category, CutReadinessWarning) for w in caught),
                "train_seconds": round(seconds, 1),
            }
        )
    return {**_describe(ctx, fam), "epochs": epochs, "ratio": ratio, "recipes": recipes}
