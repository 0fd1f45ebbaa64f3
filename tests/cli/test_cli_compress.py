"""``netslim compress`` / ``netslim decompress`` round trips on a saved zoo model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import netslim
from netslim.cli import main
from netslim.io import read_checkpoint


@pytest.fixture
def pruned_checkpoint(tmp_path: Path) -> Path:
    from netslim.models import create

    torch.manual_seed(0)
    model = create("lenet300_100", num_classes=10, in_channels=1, input_size=28)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                keep = param.abs() > param.abs().flatten().quantile(0.9)
                param.mul_(keep)  # negative weights become -0.0, as masking does
    return netslim.save(model, tmp_path / "pruned.pt", extra={"note": "test"})


def test_compress_decompress_round_trip_is_bit_exact(
    pruned_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packed = tmp_path / "model.nsz"
    assert main(["compress", str(pruned_checkpoint), "-o", str(packed)]) == 0
    printed = capsys.readouterr().out
    assert "sparse-float32" in printed and "total" in printed
    assert packed.stat().st_size < 0.2 * pruned_checkpoint.stat().st_size

    restored = tmp_path / "restored.pt"
    assert main(["decompress", str(packed), "-o", str(restored)]) == 0
    original, back = read_checkpoint(pruned_checkpoint), read_checkpoint(restored)
    assert back.meta == original.meta
    assert back.state_dict.keys() == original.state_dict.keys()
    for name, ref in original.state_dict.items():
        assert torch.equal(back.state_dict[name], ref), name
    model = netslim.load(restored)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(model(x), netslim.load(pruned_checkpoint)(x))


def test_quantized_huffman_round_trip(pruned_checkpoint: Path, tmp_path: Path) -> None:
    packed = tmp_path / "model_q.nsz"
    args = ["compress", str(pruned_checkpoint), "-o", str(packed), "--quantize", "--bits-fc=4", "--huffman"]
    assert main(args) == 0
    restored = tmp_path / "restored_q.pt"
    assert main(["decompress", str(packed), "-o", str(restored)]) == 0
    original, back = read_checkpoint(pruned_checkpoint), read_checkpoint(restored)
    for name, ref in original.state_dict.items():
        out = back.state_dict[name]
        if ref.dim() == 2:
            assert torch.equal(out != 0, ref != 0)
            assert len(torch.unique(out[out != 0])) <= 15
            scale = ref.abs().max()
            assert (out - ref).abs().max() <= 0.1 * scale
        else:
            assert torch.equal(out, ref)
    netslim.load(restored)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.nsz"
    bad.write_bytes(b"not a compressed model at all")
    assert main(["decompress", str(bad), "-o", str(tmp_path / "x.pt")]) == 2
    assert "magic" in capsys.readouterr().err
    assert main(["decompress", str(tmp_path / "missing.nsz"), "-o", str(tmp_path / "x.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
