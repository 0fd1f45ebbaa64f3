"""Pure schedule functions for iterative pruning, and Han's dropout adjustment for retraining."""

from __future__ import annotations

import math

from torch import nn

from netslim.errors import PruningError


def cubic_sparsity(
    step: int | float, s0: float, sf: float, t0: int | float, n: int, dt: int | float
) -> float:
    """Zhu & Gupta 2017 gradual pruning: the target sparsity at ``step``.

    ``s_t = sf + (s0 - sf) * (1 - (t - t0) / (n * dt)) ** 3`` for ``t0 <= t <= t0 + n * dt``; ``s0`` before
    ``t0`` and ``sf`` after the last pruning step. Prunes fast early, when there is most redundancy.
    """
    if n < 1 or dt <= 0:
        raise PruningError(f"cubic schedule needs n >= 1 and dt > 0, got n={n}, dt={dt}")
    if not (0.0 <= s0 <= 1.0 and 0.0 <= sf <= 1.0):
        raise PruningError(f"sparsities must lie in [0, 1], got s0={s0}, sf={sf}")
    progress = min(max((step - t0) / (n * dt), 0.0), 1.0)
    return sf + (s0 - sf) * (1.0 - progress) ** 3


def growing_quality(base: float, step: float, round_index: int) -> float:
    """Han's thesis schedule: one threshold plus a fixed increment per iteration (``base + step * round``)."""
    return base + step * round_index


def retrain_dropout(d_original: float, c_original: int, c_retrain: int) -> float:
    """Han et al. 2015 Eq. 2: ``D_r = D_o * sqrt(C_ir / C_io)`` (connections after vs before pruning).

    Example: AlexNet fc6 keeps 9% of its connections, so dropout 0.5 becomes 0.5 * sqrt(0.09) = 0.15.
    """
    if not 0.0 <= d_original < 1.0:
        raise PruningError(f"dropout rate must be in [0, 1), got {d_original}")
    if c_original <= 0 or not 0 <= c_retrain <= c_original:
        raise PruningError(
            f"need 0 <= kept connections ({c_retrain}) <= original ({c_original}), original > 0"
        )
    return d_original * math.sqrt(c_retrain / c_original)


def dropout_pairs(model: nn.Module) -> dict[str, str]:
    """Pair each ``nn.Dropout`` with the Linear layer whose connections it thins: ``{dropout: linear}``.

    Found by module registration order: a dropout feeds the next Linear registered after it (AlexNet/VGG
    classifier: ``Dropout, Linear(fc6), ReLU, Dropout, Linear(fc7)``); a dropout with no later Linear is
    paired with the last Linear before it. Models that register modules out of data-flow order need an
    explicit mapping instead.
    """
    order = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Dropout | nn.Linear)]
    pairs: dict[str, str] = {}
    for i, (name, m) in enumerate(order):
        if not isinstance(m, nn.Dropout):
            continue
        after = next((n for n, mm in order[i + 1 :] if isinstance(mm, nn.Linear)), None)
        before = next((n for n, mm in reversed(order[:i]) if isinstance(mm, nn.Linear)), None)
        if after or before:
            pairs[name] = after or before  # type: ignore[assignment]
    return pairs


def adjust_dropout(model: nn.Module, original_rates: dict[str, float] | None = None) -> dict[str, float]:
    """Set every paired dropout's rate by Eq. 2 from its Linear layer's current non-zero weights.

    ``original_rates`` holds ``D_o`` per dropout name (read from the model when omitted, so pass the
    returned-before values on later rounds to keep D_o the original rate). Returns ``{dropout: new rate}``.
    """
    rates: dict[str, float] = {}
    for drop_name, lin_name in dropout_pairs(model).items():
        drop = model.get_submodule(drop_name)
        weight = model.get_submodule(lin_name).weight.detach()
        d_o = (original_rates or {}).get(drop_name, drop.p)
        drop.p = retrain_dropout(d_o, weight.numel(), int((weight != 0).sum()))
        rates[drop_name] = drop.p
    return rates


def dropout_rates(model: nn.Module) -> dict[str, float]:
    """Current rate of every ``nn.Dropout`` by name (record these as ``D_o`` before the first prune)."""
    return {name: m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout)}
