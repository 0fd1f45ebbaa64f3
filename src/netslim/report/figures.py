"""The report's figures: drawn from the run's data into ``plots/`` by :mod:`netslim.plots`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from netslim.errors import NetslimError
from netslim.pipelines import layout as L

# images an older netslim report wrote at the run root: superseded by the figures drawn into plots/
# images an older netslim report wrote at the run root: superseded by the figures drawn into plots/
OLD_REPORT_IMAGES = {
    "curves": "training_curves.png",
    "gamma": "gamma_hist.png",
    "channels": "channels_per_layer.png",
}


class Figures:
    """Draws the report's figures into ``plots/`` (with ``draw=False``, uses those already there)."""

    def __init__(self, root: Path, draw: bool, problems: list[str]) -> None:
        self.root, self.draw, self.problems = root, draw, problems
        self.drawn: dict[str, tuple[str, str]] = {}  # run-relative path -> (figure kind, content digest)

    def make(
        self, kind: str, plot: str, data: Any, caption: str, *, name: str | None = None, **options: Any
    ) -> dict[str, Any] | None:
        """A figure block for ``plots/<name>`` (default ``<kind>.png``) drawn by
        ``netslim.plots.<plot>(data, path, **options)``; None (and a note in ``problems``) if drawing fails
        or, without drawing, the file is not there."""
        name = name or f"{kind}.png"
        path = self.root / L.PLOTS / name
        if self.draw:
            try:
                getattr(plots_module(), plot)(data, path, **options)
            except (NetslimError, ValueError, KeyError, TypeError, IndexError) as exc:
                self.problems.append(f"could not draw {L.PLOTS}/{name}: {exc}")
                return None
        if not path.is_file():
            return None
        rel = f"{L.PLOTS}/{name}"
        self.drawn[rel] = (kind, file_digest(path))
        return {"type": "figure", "figure": kind, "file": rel, "caption": caption}


def plots_module() -> Any:
    """:mod:`netslim.plots`, or None without matplotlib."""
    try:
        import matplotlib  # noqa: F401

        from netslim import plots
    except ImportError:  # pragma: no cover - matplotlib is an optional extra
        return None
    return plots


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes (a figure is shown once however many files hold it)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
