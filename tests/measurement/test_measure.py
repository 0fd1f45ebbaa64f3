"""FLOP/MAC counter against formula oracles and published counts; params, memory, latency, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import netslim
from netslim.cli import main
from netslim.measurement import compare, count, count_params, file_bytes, saved_size
from netslim.slimming.channel_select import ChannelSelect


def conv_macs(n: int, cin: int, cout: int, k: int, hout: int, wout: int, groups: int = 1) -> int:
    """The textbook formula: N * Hout * Wout * Cout * (Cin / groups) * k * k."""
    return n * hout * wout * cout * (cin // groups) * k * k


@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "pad", "groups", "size"),
    [
        (3, 8, 3, 1, 1, 1, 16),
        (8, 16, 3, 2, 1, 1, 15),
        (8, 8, 3, 1, 1, 8, 12),
        (8, 12, 1, 1, 0, 4, 10),
        (4, 6, 5, 1, 0, 2, 9),
    ],
)
def test_conv_macs_match_formula(
    cin: int, cout: int, k: int, stride: int, pad: int, groups: int, size: int
) -> None:
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)
    x = torch.randn(2, cin, size, size)
    hout = (size + 2 * pad - k) // stride + 1
    result = count(conv, x)
    assert result.macs == conv_macs(2, cin, cout, k, hout, hout, groups)
    assert result.other_flops == 0


def test_transposed_conv_macs() -> None:
    conv = nn.ConvTranspose2d(4, 6, 3, stride=2)
    x = torch.randn(1, 4, 5, 5)
    # every input pixel of every input channel is scattered to Cout * k * k outputs
    assert count(conv, x).macs == 1 * 5 * 5 * 4 * 6 * 9


def test_linear_bn_add_pool_relu_oracles() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4 * 4 * 4, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu(self.bn(x))  # BN 2/element, ReLU 1/element
            y = y + x  # 1/element
            y = F.max_pool2d(y, 2)  # one per window element
            return self.fc(y.flatten(1))

    x = torch.randn(3, 4, 8, 8)
    r = count(Net(), x)
    elements = 3 * 4 * 8 * 8
    assert r.macs == 3 * 64 * 7
    assert r.other_flops == 2 * elements + elements + elements + (3 * 4 * 4 * 4) * 4
    assert r.by_module["bn"]["other_flops"] == 2 * elements
    assert r.by_module["fc"]["macs"] == 3 * 64 * 7
    assert r.by_module[""]["flops"] == 2 * r.macs + r.other_flops
    assert r.unsupported == {}


def test_nonzero_macs_with_zeroed_weights() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    with torch.no_grad():
        net[0].weight[:2] = 0  # two whole filters
        net[2].weight[:, ::2] = 0  # half the inputs of the classifier
    r = count(net, torch.randn(2, 3, 8, 8))
    conv_nnz = int((net[0].weight != 0).sum())
    fc_nnz = int((net[2].weight != 0).sum())
    assert r.macs == 2 * 36 * 4 * 27 + 2 * 144 * 5
    assert r.nonzero_macs == 2 * 36 * conv_nnz + 2 * fc_nnz
    params, nonzero = count_params(net)
    assert params == sum(p.numel() for p in net.parameters())
    assert nonzero == sum(int((p != 0).sum()) for p in net.parameters())


class _Mask(nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def test_parametrized_masks_are_seen_through_and_not_counted_as_compute() -> None:
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    mask = (torch.arange(200).reshape(20, 10) % 4 == 0).float()
    parametrize.register_parametrization(net[0], "weight", _Mask(mask))
    r = count(net, torch.randn(1, 10))
    assert r.macs == 200 + 60
    assert r.nonzero_macs == int(mask.sum()) + 60
    assert r.other_flops == 20  # only the ReLU: applying the mask is not model compute
    params, nonzero = count_params(net)
    assert params == 200 + 20 + 60 + 3  # mask buffers are not parameters, weights counted once
    assert nonzero == int(mask.sum()) + 20 + 60 + 3


def test_channel_select_costs_nothing_and_is_noted() -> None:
    net = nn.Sequential(nn.Conv2d(3, 6, 1), ChannelSelect([0, 2, 4]), nn.Conv2d(3, 2, 1))
    m = netslim.measure(net, torch.randn(1, 3, 4, 4), latency=False, file_size=False)
    assert m["macs"] == 16 * 3 * 6 + 16 * 3 * 2
    assert m["params"] == 6 * 3 + 6 + 2 * 3 + 2  # the index buffer is not a parameter
    assert any("index_select" in note for note in m["notes"])


def test_unsupported_operator_is_reported_not_silently_zero() -> None:
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=1)

    with pytest.warns(UserWarning, match="cumsum"):
        r = count(Odd(), torch.randn(2, 5))
    assert r.unsupported == {"aten.cumsum": 1}


def test_peak_activation_memory_hand_count() -> None:
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))
    x = torch.randn(4, 1, 10, 10)
    r = count(net, x)
    f = 4  # float32 bytes
    inp, wide, narrow = 4 * 100 * f, 4 * 8 * 100 * f, 4 * 2 * 100 * f
    # peak: input + conv1 output + relu output (not in place), live at the same time
    assert r.activation_bytes == inp + 2 * wide
    assert r.activation_total_bytes == inp + 2 * wide + narrow


def test_slimmed_model_uses_less_memory_flops_and_params() -> None:
    def net(width: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, 10),
        )

    result = compare(net(32), net(12), torch.randn(1, 3, 16, 16), batch_sizes=(1, 4), repeats=3, warmup=1)
    ratio = result["ratio"]
    for key in ("params", "flops", "activation_bytes", "file_bytes"):
        assert 0 < ratio[key] < 1, key
    assert ratio["activation_bytes_by_batch"][4] < 1
    assert set(ratio["latency_ms"]) == {1, 4}
    assert all(v > 0 for v in result["b"]["latency_ms"].values())


def test_measure_dict_contents_and_conventions(tmp_path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    m = netslim.measure(net, torch.randn(1, 3, 32, 32), batch_sizes=(1, 2), repeats=2, warmup=0, threads=1)
    assert (m["macs"], m["flops"], m["params"]) == (266400, 532800, 72234)
    assert m["threads"] == 1
    assert set(m["latency_ms"]) == {1, 2} and set(m["activation_bytes_by_batch"]) == {1, 2}
    assert m["activation_bytes_by_batch"][2] > m["activation_bytes"]
    assert "2 x MACs" in m["conventions"]["flops"]
    assert m["file_bytes"] == saved_size(net) > 4 * m["params"]
    json.dumps({k: v for k, v in m.items() if not isinstance(v, dict)})
    path = netslim.save(net, tmp_path / "net.pt")
    assert file_bytes(path) == m["file_bytes"]
    assert net.training  # the caller's mode is restored


@pytest.mark.parametrize(
    ("name", "published"), [("vgg19", 7.97e8), ("preresnet164", 4.99e8), ("densenet40", 5.33e8)]
)
def test_published_cifar10_flops_within_2_percent(name: str, published: float) -> None:
    """Table 1 of Liu et al. 2017 (CIFAR-10 base models): FLOPs = 2 x MACs reproduces them."""
    from netslim.models import create

    r = count(create(name), torch.randn(1, 3, 32, 32))
    assert r.unsupported == {}
    assert math.isclose(2 * r.macs, published, rel_tol=0.02), (name, 2 * r.macs)


def test_cli_measure_table_and_json(tmp_path, capsys) -> None:
    from netslim.models import create

    ckpt = netslim.save(create("lenet5", in_channels=1, input_size=28), tmp_path / "lenet.pt")
    out = tmp_path / "m.json"
    code = main(
        [
            "measure",
            "lenet5",
            "--compare",
            str(ckpt),
            "--input-shape",
            "1",
            "28",
            "28",
            "--batch-sizes",
            "1",
            "4",
            "--repeats",
            "2",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    for label in (
        "params",
        "nonzero params",
        "MACs",
        "FLOPs",
        "activation memory",
        "latency b1",
        "latency b4",
        "file size",
        "ratio",
    ):
        assert label in text
    data = json.loads(out.read_text())
    assert data["ratio"]["macs"] == pytest.approx(1.0)
    assert data["a"]["macs"] > 0


def test_cli_measure_bad_input_shape_is_a_clean_error(capsys) -> None:
    assert main(["measure", "lenet5", "--input-shape", "1", "0", "28", "--no-latency"]) == 2
    err = capsys.readouterr().err
    assert "C H W" in err and len(err.strip().splitlines()) == 1
    assert main(["measure", "lenet5", "--input-size", "big", "--no-latency"]) == 2  # the older spelling
    assert "C H W" in capsys.readouterr().err


def test_measure_with_onnxruntime_latency() -> None:
    pytest.importorskip("onnxruntime")
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    m = netslim.measure(
        net,
        torch.randn(1, 1, 28, 28),
        batch_sizes=(1, 2),
        repeats=2,
        warmup=1,
        onnxruntime=True,
        file_size=False,
    )
    assert set(m["onnx_latency_ms"]) == {1, 2} and all(v > 0 for v in m["onnx_latency_ms"].values())
    assert m["file_bytes"] is None


class _TwoInputs(nn.Module):
    """A model called with keyword inputs, as a transformers model is called with its tokenizer's batch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(x) if bias is None else self.fc(x) + bias


def test_measure_takes_a_tensor_a_tuple_or_a_dict_of_keyword_inputs() -> None:
    """One helper calls the model: the three input forms count the same MACs; latency batches a dict too."""
    model, x = _TwoInputs(), torch.randn(2, 4)
    forms = (x, (x,), {"x": x}, {"x": x, "bias": torch.zeros(2, 3)})
    counted = [netslim.measure(model, f, latency=False, file_size=False) for f in forms]
    assert {c["macs"] for c in counted} == {2 * 4 * 3} and {c["batch_size"] for c in counted} == {2}
    timed = netslim.measure(model, {"x": x}, batch_sizes=(1, 4), repeats=3, warmup=1, file_size=False)
    assert set(timed["latency_ms"]) == {1, 4}
    assert timed["activation_bytes_by_batch"][4] > timed["activation_bytes_by_batch"][1]


def test_measure_refuses_inputs_it_cannot_call_the_model_with() -> None:
    with pytest.raises(netslim.errors.TracingError, match="tensor, a tuple of tensors or a dict"):
        netslim.measure(_TwoInputs(), 3, latency=False)
    with pytest.raises(netslim.errors.NetslimError, match="positional inputs"):
        netslim.measure(_TwoInputs(), {"x": torch.randn(1, 4)}, onnxruntime=True)
