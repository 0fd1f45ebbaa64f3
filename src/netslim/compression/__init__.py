"""Deep Compression storage for pruned models (Han et al. 2015/2016).

Pruned float32 weights are stored as relative indices with filler zeros, optionally weight-shared by
k-means and Huffman coded, in a versioned, CRC-checked container; everything else is stored raw.

* :func:`compress_state_dict` / :func:`decompress`: bytes in, bytes out.
* :func:`compress_model`: a model or state dict to ``(bytes, SizeReport)``.
* :func:`compress_checkpoint` / :func:`decompress_checkpoint`: netslim checkpoint files.
* :func:`share_weights` / :func:`finetune_centroids`: k-means weight sharing and centroid fine-tuning.
"""

from __future__ import annotations

from netslim.compression.api import (
    compress_checkpoint,
    compress_model,
    compress_state_dict,
    decompress,
    decompress_checkpoint,
)
from netslim.compression.kmeans import SharedWeight, finetune_centroids, share_weights
from netslim.compression.report import LayerSize, SizeReport, size_report

__all__ = [
    "LayerSize",
    "SharedWeight",
    "SizeReport",
    "compress_checkpoint",
    "compress_model",
    "compress_state_dict",
    "decompress",
    "decompress_checkpoint",
    "finetune_centroids",
    "share_weights",
    "size_report",
]
