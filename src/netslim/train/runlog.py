"""Per-epoch metrics files of a run: ``metrics.csv``, ``metrics.jsonl`` and, if installed, TensorBoard."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any


def _write_text(path: Path, text: str) -> None:
    from netslim._atomic import atomic_write_text

    atomic_write_text(path, text)


class MetricsLog:
    """Writes the whole metrics history after every epoch.

    Rewriting (rather than appending) keeps the files consistent with the checkpoint after a resume: an
    epoch logged by a run that was killed before checkpointing it disappears when the run is resumed.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._tb = _summary_writer(self.run_dir / "tensorboard")
        self._tb_written = 0

    def write(self, history: list[dict[str, Any]]) -> None:
        """Write ``history`` (one dict per epoch) to the CSV and JSONL files and new epochs to TensorBoard."""
        _write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))
        columns: list[str] = []
        for row in history:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in history:
            writer.writerow([_csv_cell(row.get(c, "")) for c in columns])
        _write_text(self.run_dir / "metrics.csv", buf.getvalue())
        if self._tb is not None:
            for row in history[self._tb_written :]:
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool):
                        self._tb.add_scalar(key, value, row.get("epoch", 0))
            self._tb.flush()
            self._tb_written = len(history)

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self._tb is not None:
            self._tb.close()


def _csv_cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def _summary_writer(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(folder))
