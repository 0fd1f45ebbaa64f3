"""Compress and decompress state dicts, models and netslim checkpoints (Deep Compression storage)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netslim.compression.fileformat import read_container, write_container
from netslim.compression.report import SizeReport, size_report
from netslim.compression.tensor_codec import CodecOptions, decode_tensor, encode_tensor
from netslim.errors import NetslimError


def compress_state_dict(
    state_dict: dict[str, torch.Tensor],
    meta: dict[str, Any] | None = None,
    *,
    index_bits_fc: int = 5,
    index_bits_conv: int = 8,
    quantize: bool = False,
    bits_fc: int = 5,
    bits_conv: int = 8,
    huffman: bool = False,
) -> bytes:
    """Encode a state dict (and JSON-serializable ``meta``) into the compressed container; returns its bytes.

    Float32 weights with 2 or more dimensions are stored as relative-index sparse streams when that is
    smaller than dense (``index_bits_fc`` for 2-D, ``index_bits_conv`` for >=3-D), optionally weight-shared
    by k-means (``quantize``, ``bits_fc``/``bits_conv``) and Huffman coded (``huffman``). Everything else
    is stored raw, bit-exact.
    """
    opts = CodecOptions(index_bits_fc, index_bits_conv, quantize, bits_fc, bits_conv, huffman)
    opts.validate()
    entries = []
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise NetslimError(f"state_dict entry {name!r} is a {type(tensor).__name__}, not a tensor")
        entries.append(encode_tensor(name, tensor, opts))
    try:
        return write_container(dict(meta or {}), entries)
    except TypeError as exc:
        raise NetslimError(f"meta must be JSON-serializable: {exc}") from None


def decompress(blob: bytes | bytearray | memoryview) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Decode a compressed container; returns ``(state_dict, meta)``.

    Raises :class:`~netslim.errors.CorruptFileError` for a damaged, truncated or foreign file.
    """
    container = read_container(blob)
    state: dict[str, torch.Tensor] = {}
    for i, record in enumerate(container.records):
        state[record["name"]] = decode_tensor(record, container.sections(i))
    return state, dict(container.meta)


def model_meta(model: nn.Module) -> dict[str, Any]:
    """Checkpoint-style meta of a model: zoo recipe, applied plans, class name and weight masks (as
    ``netslim.save``), so a decompressed weight-pruned model loads masked again."""
    from netslim.weights.masks import mask_meta

    meta: dict[str, Any] = {
        "recipe": getattr(model, "netslim_recipe", None),
        "plans": list(getattr(model, "netslim_plans", [])),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "extra": {},
    }
    if masks := mask_meta(model):
        meta["masks"] = masks
    return meta


def compress_model(
    model_or_state_dict: nn.Module | dict[str, torch.Tensor], **options: Any
) -> tuple[bytes, SizeReport]:
    """Compress a model (masks must be folded in) or a state dict; returns ``(file bytes, SizeReport)``.

    ``options`` are those of :func:`compress_state_dict`.
    """
    if isinstance(model_or_state_dict, nn.Module):
        from netslim.io import plain_state_dict

        state = plain_state_dict(model_or_state_dict)
        meta = model_meta(model_or_state_dict)
    else:
        state, meta = dict(model_or_state_dict), {}
    blob = compress_state_dict(state, meta, **options)
    return blob, size_report(blob)


def _atomic_write_bytes(path: Path, blob: bytes) -> None:
    from netslim._atomic import atomic_write_bytes

    atomic_write_bytes(path, blob)


def compress_checkpoint(
    path: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any
) -> SizeReport:
    """Compress a netslim checkpoint file into ``out``; returns the :class:`SizeReport`.

    ``options`` are those of :func:`compress_state_dict`.
    """
    from netslim.io import read_checkpoint

    ckpt = read_checkpoint(path)
    blob = compress_state_dict(ckpt.state_dict, ckpt.meta, **options)
    _atomic_write_bytes(Path(out), blob)
    return size_report(blob)


def read_compressed(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a compressed file; a missing path raises :class:`~netslim.errors.NetslimError`."""
    path = Path(path)
    if not path.is_file():
        raise NetslimError(f"compressed model {path} does not exist; create it with `netslim compress`")
    return path.read_bytes()


def decompress_checkpoint(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Decode a compressed file into a netslim checkpoint at ``out`` (for ``netslim.load``); returns it."""
    from netslim.io import Checkpoint, write_checkpoint

    state, meta = decompress(read_compressed(path))
    return write_checkpoint(out, Checkpoint(meta=meta, state_dict=state))
