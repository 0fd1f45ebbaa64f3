"""ONNX export of slimmed / weight-pruned nets matches torch in onnxruntime; INT8 quantization works."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import netslim
from netslim.cli import main
from netslim.export import compare_float_int8, export_onnx, max_abs_diff, quantize_int8, run_onnx
from netslim.measurement.table import format_int8_table
from netslim.slimming.channel_select import ChannelSelect

pytest.importorskip("onnxruntime")


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(6)
        self.select = ChannelSelect([0, 2, 3, 5])
        self.conv = nn.Conv2d(4, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.select(torch.relu(self.bn(x))))


def slim_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), Residual(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 14 * 14, 10)
    )
    with torch.no_grad():  # non-trivial BN statistics
        net[1].bn.running_mean.uniform_(-0.5, 0.5)
        net[1].bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_slimmed_net_with_channel_select_matches_in_onnxruntime(tmp_path) -> None:
    net = slim_net()
    path = export_onnx(net, tmp_path / "slim.onnx", torch.randn(1, 1, 28, 28))
    x = torch.randn(5, 1, 28, 28)  # a different batch size: the batch axis is dynamic
    assert max_abs_diff(net, path, x) < 1e-4
    assert run_onnx(path, x.numpy())[0].shape == (5, 10)


def test_weight_pruned_finalized_net_matches(tmp_path) -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    with torch.no_grad():
        for layer in (net[1], net[3]):
            w = layer.weight
            w[w.abs() < w.abs().quantile(0.8)] = 0  # 80% zeros, plain weights (a finalized model)
    path = export_onnx(net, tmp_path / "pruned.onnx", torch.randn(1, 1, 28, 28))
    assert max_abs_diff(net, path, torch.randn(3, 1, 28, 28)) < 1e-4


def test_int8_quantization_shrinks_weights_and_reports_accuracy(tmp_path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    float_path = export_onnx(net, tmp_path / "mlp.onnx", torch.randn(1, 1, 28, 28))
    calib = [torch.randn(16, 1, 28, 28) for _ in range(4)]
    int8_path = quantize_int8(float_path, tmp_path / "mlp.int8.onnx", calib)
    loader = [(torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))) for _ in range(3)]
    table = compare_float_int8(
        float_path, int8_path, loader, torch.randn(1, 1, 28, 28), batch_sizes=(1, 8), repeats=3, warmup=1
    )
    assert 0.2 < table["ratio"]["file_bytes"] < 0.35  # ~4x smaller weights (plus scales and graph)
    for key in ("float", "int8"):
        assert 0.0 <= table[key]["accuracy"] <= 1.0
        assert set(table[key]["latency_ms"]) == {1, 8}
    out = run_onnx(int8_path, calib[0])[0]
    assert out.shape == (16, 10) and np.isfinite(out).all()
    text = format_int8_table(table)
    assert "file size" in text and "accuracy" in text


def test_cli_export_checkpoint(tmp_path, capsys) -> None:
    from netslim.models import create

    ckpt = netslim.save(create("lenet300_100", in_channels=1, input_size=28), tmp_path / "m.pt")
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--onnx", str(out), "--input-shape", "1", "28", "28"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "max |torch - onnxruntime|" in text and "inference form: " in text
    assert main(["export", str(ckpt), "--onnx", str(out), "--input-shape", "1", "28", "28", "--int8"]) == 2
    assert "--calib-dataset" in capsys.readouterr().err


def test_int8_latency_is_reported_only_where_measured_faster() -> None:
    """b64: INT8 clearly faster -> shown with spread; b1: slower -> one line, no INT8 latency number."""
    from netslim.export import int8_measured_faster
    from netslim.measurement.latency import Timing

    def t(m: float, spread: float = 0.01) -> dict:
        return Timing(m, m * (1 - spread), m * (1 + spread), 30).to_dict()

    f = {"file_bytes": 400, "accuracy": None, "latency": {1: t(1.0), 64: t(40.0)}}
    q = {"file_bytes": 100, "accuracy": None, "latency": {1: t(4.4), 64: t(20.0)}}
    for row in (f, q):
        row["latency_ms"] = {b: d["median_ms"] for b, d in row["latency"].items()}
    faster = {b: int8_measured_faster(f["latency"][b], q["latency"][b]) for b in (1, 64)}
    assert faster == {1: False, 64: True}
    assert not int8_measured_faster(t(40.0), {**t(20.0), "noisy": True, "reason": "load"})
    assert not int8_measured_faster(t(40.0, 0.3), t(30.0, 0.3))  # overlapping quartiles
    ratio = {"file_bytes": 0.25, "latency_ms": {1: 4.4, 64: 0.5}}
    text = format_int8_table({"float": f, "int8": q, "ratio": ratio, "int8_faster": faster})
    assert "latency b64" in text and "20.0 ms ±0.2" in text
    assert "latency b1" not in text and "4.40 ms" not in text
    assert "INT8 is not measured faster than float at b1 4.40x float" in text
