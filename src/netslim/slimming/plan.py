"""PruningPlan, the plan data type: which channels of which layers to keep, with its JSON I/O.

``layers`` maps a module FQN to ``{"kind", "type", "out_before", "in_before", "out_keep", "in_keep",
"select"}``: ``out_keep`` are kept output channels (BatchNorm channels for a BN, both sides for a depthwise
conv), ``in_keep`` kept input channels/features of a conv/linear; ``None`` keeps everything. ``select``
marks a pre-activation BatchNorm that reads its kept channels through a ChannelSelect. ``folds`` describe
how the removed channels' constant output (their beta through the activation) is folded into the next
layer, ``added_bias`` lists layers that gained a bias doing so and ``added_border`` the convs that gained a
border fold (:mod:`netslim.slimming.border`; both replayed even without folding, so a saved slimmed model
reloads with the same parameter and buffer names and shapes). ``readiness`` says how clean the
cut is (:mod:`netslim.slimming.readiness`). Plans are built by :mod:`netslim.slimming.plan_builder`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from netslim.errors import CorruptFileError
from netslim.slimming.readiness import CutReadiness

PLAN_VERSION = 1


@dataclass
class PruningPlan:
    """Kept channel indices per layer plus metadata (ratio, threshold, scope, largest safe ratio)."""

    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    folds: list[dict[str, Any]] = field(default_factory=list)
    added_bias: list[str] = field(default_factory=list)
    added_border: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    readiness: CutReadiness | None = None

    # ---- queries --------------------------------------------------------------------------------------
    def widths(self) -> dict[str, tuple[int, int]]:
        """Map each planned layer to (channels before, channels after) of its pruned dimension."""
        out = {}
        for fqn, lp in self.layers.items():
            out[fqn] = (int(lp["before"]), int(lp["after"]))
        return out

    @property
    def pruned_channels(self) -> int:
        """Number of group channels the plan removes."""
        return int(self.meta.get("pruned_channels", 0))

    def is_empty(self) -> bool:
        """True if the plan removes nothing."""
        return all(lp.get("out_keep") is None and lp.get("in_keep") is None for lp in self.layers.values())

    # ---- serialization --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable deep copy of the plan."""
        out = {
            "version": PLAN_VERSION,
            "layers": _copy_json(self.layers),
            "folds": _copy_json(self.folds),
            "added_bias": list(self.added_bias),
            "added_border": list(self.added_border),
            "meta": _copy_json(self.meta),
        }
        if self.readiness is not None:
            out["readiness"] = self.readiness.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruningPlan:
        """Rebuild a plan from :meth:`to_dict` output; raises CorruptFileError for malformed input."""
        if not isinstance(data, dict) or not isinstance(data.get("layers"), dict):
            raise CorruptFileError(
                "not a netslim pruning plan (expected a dict with 'layers'); pass "
                "the output of PruningPlan.to_dict()"
            )
        if data.get("version", PLAN_VERSION) > PLAN_VERSION:
            raise CorruptFileError(f"pruning plan version {data['version']} is newer than this netslim")
        ready = data.get("readiness")  # absent from plans written before it existed
        return cls(
            layers=_copy_json(data["layers"]),
            folds=_copy_json(data.get("folds", [])),
            added_bias=list(data.get("added_bias", [])),
            added_border=list(data.get("added_border", [])),
            meta=_copy_json(data.get("meta", {})),
            readiness=CutReadiness.from_dict(ready) if isinstance(ready, dict) else None,
        )

    def to_json(self, indent: int | None = None) -> str:
        """The plan as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> PruningPlan:
        """Parse :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CorruptFileError(f"pruning plan is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def __str__(self) -> str:
        m = self.meta
        head = (
            f"PruningPlan: ratio={m.get('ratio')} scope={m.get('scope')} "
            f"threshold={_fmt(m.get('threshold'))} "
            f"pruned {m.get('pruned_channels', 0)}/{m.get('total_channels', 0)} channels, "
            f"largest safe ratio={_fmt(m.get('max_safe_ratio'))}"
        )
        rows = [f"  {'layer':<40} {'kind':<7} {'before':>7} -> {'after':<7}"]
        if self.readiness is not None:
            rows.insert(0, self.readiness.line())
        for fqn, (before, after) in self.widths().items():
            kind = self.layers[fqn].get("kind", "")
            mark = " (select)" if self.layers[fqn].get("select") else ""
            rows.append(f"  {fqn:<40} {kind:<7} {before:>7} -> {after:<7}{mark}")
        return "\n".join([head, *rows])


def _copy_json(obj: Any) -> Any:
    """Deep copy of nested dicts/lists/tuples of plain values (copy.deepcopy is slow on long index lists)."""
    kind = type(obj)
    if kind is dict:
        return {k: _copy_json(v) for k, v in obj.items()}
    if kind is list:
        return [v if type(v) in _ATOMIC else _copy_json(v) for v in obj]
    if kind is tuple:
        return tuple([v if type(v) in _ATOMIC else _copy_json(v) for v in obj])
    if kind in _ATOMIC:
        return obj
    return copy.deepcopy(obj)


_ATOMIC = frozenset({int, float, str, bool, type(None)})


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
