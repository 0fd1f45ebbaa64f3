"""The shared dataset-file builders in ``helpers`` write the documented formats."""

from __future__ import annotations

import struct

import numpy as np

from helpers import idx_bytes


def test_idx_builder_writes_the_documented_header():
    data = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    assert data[:4] == b"\x00\x00\x08\x02"
    assert struct.unpack(">2I", data[4:12]) == (2, 3)
    assert len(data) == 12 + 6
