"""Render measurement dicts as a plain-text table (computing and rendering are kept apart)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netslim._table import format_table as layout_table
from netslim.measurement.latency import format_latency


def human(value: float | None, unit: str = "") -> str:
    """``1234567`` -> ``"1.23M"``; bytes use binary-free SI prefixes too (``"2.4 MB"``)."""
    if value is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _ratio(value: float | dict[str, Any] | None) -> str:
    if isinstance(value, dict):
        text = _ratio(value.get("ratio"))
        return f"{text} (noisy)" if value.get("noisy") else text
    return "-" if value is None else f"{value:.3f}x"


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, formatted value)`` rows for one :func:`netslim.measure` result."""
    out = [
        ("params", human(result.get("params"))),
        ("nonzero params", human(result.get("nonzero_params"))),
        ("MACs", human(result.get("macs"))),
        ("FLOPs (2xMACs)", human(result.get("flops"))),
        ("nonzero FLOPs", human(result.get("nonzero_flops"))),
        ("activation memory", human(result.get("activation_bytes"), "B")),
    ]
    for b, entry in (result.get("latency") or result.get("latency_ms", {})).items():
        out.append((f"latency b{b}", format_latency(entry)))
    for b, entry in (result.get("onnx_latency") or result.get("onnx_latency_ms", {})).items():
        out.append((f"onnxruntime b{b}", format_latency(entry)))
    out.append(("file size", human(result.get("file_bytes"), "B")))
    return out


def _ratio_values(ratio: dict[str, Any]) -> list[str]:
    values = [
        _ratio(ratio.get(k))
        for k in ("params", "nonzero_params", "macs", "flops", "nonzero_flops", "activation_bytes")
    ]
    values += [_ratio(v) for v in (ratio.get("latency") or ratio.get("latency_ms", {})).values()]
    values += [_ratio(v) for v in (ratio.get("onnx_latency") or ratio.get("onnx_latency_ms", {})).values()]
    values.append(_ratio(ratio.get("file_bytes")))
    return values


def format_table(
    results: Sequence[dict[str, Any]], names: Sequence[str], ratio: dict[str, Any] | None = None
) -> str:
    """A fixed-width table: one row per metric, one column per model, plus a ``ratio`` column if given."""
    columns = [rows(r) for r in results]
    header = ["metric", *names] + (["ratio"] if ratio is not None else [])
    ratio_values = _ratio_values(ratio) if ratio is not None else []
    body = []
    for i, (label, _) in enumerate(columns[0]):
        line = [label] + [col[i][1] if i < len(col) else "-" for col in columns]
        if ratio is not None:
            line.append(ratio_values[i] if i < len(ratio_values) else "-")
        body.append(line)
    return layout_table(body, header)


def format_int8_table(table: dict[str, Any]) -> str:
    """File size, accuracy and, where INT8 was measured faster than float, latency of both models.

    ``table`` is what :func:`netslim.export.compare_float_int8` returns. Latency rows appear only for batch
    sizes where INT8 beat float beyond the noise (``int8_faster``); the others are summarized in one line
    saying INT8 is not faster there.
    """
    f, q, r = table["float"], table["int8"], table["ratio"]
    body: list[list[str]] = [
        ["file size (B)", f"{f['file_bytes']:,}", f"{q['file_bytes']:,}", f"{r['file_bytes']:.3f}"]
    ]
    faster = table.get("int8_faster", {})
    slower = []
    for b in f["latency_ms"]:
        if faster.get(b):
            times = [format_latency(f["latency"][b]), format_latency(q["latency"][b])]
            body.append([f"latency b{b}", *times, f"{r['latency_ms'][b]:.3f}"])
        else:
            slower.append(f"b{b} {r['latency_ms'][b]:.2f}x float")
    if f["accuracy"] is not None:
        body.append(["accuracy", f"{f['accuracy']:.4f}", f"{q['accuracy']:.4f}", ""])
    lines = [layout_table(body, ["", "float", "int8", "int8/float"], align="lrrr")]
    if slower:
        lines.append(
            f"INT8 is not measured faster than float at {', '.join(slower)} (median; not beyond the noise or "
            "slower): INT8 latency not reported there"
        )
    return "\n".join(lines)
