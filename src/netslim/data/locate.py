"""Where dataset files are looked for, and which files are missing when they are not found.

Without a ``data_dir`` argument the search order is ``$NETSLIM_DATA``, ``~/.cache/netslim``,
``/usr/share/datasets`` (where Debian's ``dataset-*`` packages install). A ``data_dir`` means that folder
only: nothing else is searched, so a run never silently reads other files than the ones it was given.
In each, the files may lie in a ``<name>/`` sub-folder, optionally inside the dataset's conventional
sub-folder (e.g. ``cifar-10-batches-bin``); in ``data_dir`` they may also lie directly in the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from netslim.data.formats.folder import class_dirs
from netslim.data.registry import FOLDER_PREFIX, DatasetSpec, Layout, get_spec, is_folder_name
from netslim.errors import DataNotFoundError, NetslimError

ENV_VAR = "NETSLIM_DATA"
SYSTEM_DIR = Path("/usr/share/datasets")


def cache_dir() -> Path:
    """netslim's per-user data folder, ``~/.cache/netslim``."""
    return Path.home() / ".cache" / "netslim"


def search_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The base folders searched, in order (duplicates removed): only ``data_dir`` when it is given."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    roots: list[Path] = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots += [cache_dir(), SYSTEM_DIR]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def candidate_dirs(spec: DatasetSpec, layout: Layout, root: Path, explicit: bool = False) -> list[Path]:
    """Folders under one search root where ``layout``'s files may lie, most specific last.

    Files directly in ``root`` count only for an ``explicit`` root (the ``data_dir`` argument): in the shared
    roots, MNIST, Fashion-MNIST and KMNIST files have the same names and must sit in ``<name>/``.
    """
    names = (spec.name, *spec.aliases)
    dirs = ([root] if explicit else []) + [root / n for n in names]
    for sub in layout.subdirs:
        dirs += ([root / sub] if explicit else []) + [root / n / sub for n in names]
    return dirs


def resolve_file(directory: Path, name: str, gz_ok: bool) -> Path | None:
    """The path of ``name`` (or ``name.gz`` when allowed) in ``directory``, or None."""
    for candidate in (name, name + ".gz") if gz_ok else (name,):
        path = directory / candidate
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class Found:
    """A folder holding every file of one layout."""

    directory: Path
    layout: Layout

    def files(self, split: str) -> list[Path]:
        """Paths of ``split``'s files in this folder."""
        paths = [resolve_file(self.directory, f, self.layout.gz_ok) for f in self.layout.files[split]]
        return [p for p in paths if p is not None]

    def meta_file(self) -> Path | None:
        """The class-names file, when it is present."""
        return resolve_file(self.directory, self.layout.meta, False) if self.layout.meta else None


def find(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> Found | None:
    """The first folder (in search order) holding all train and test files of one of ``spec``'s layouts."""
    explicit = Path(data_dir).expanduser() if data_dir is not None else None
    for root in search_roots(data_dir):
        for layout in spec.layouts:
            for directory in candidate_dirs(spec, layout, root, explicit=root == explicit):
                needed = [f for split in layout.files.values() for f in split]
                if all(resolve_file(directory, f, layout.gz_ok) for f in needed):
                    return Found(directory, layout)
    return None


def folder_root(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The image-folder root meant by ``folder:<path>`` or by ``folder`` with ``data_dir``."""
    if name.startswith(FOLDER_PREFIX):
        return Path(name[len(FOLDER_PREFIX) :]).expanduser()
    if data_dir is None:
        raise NetslimError(
            "dataset 'folder' needs a data_dir (--data-dir PATH), or use the name 'folder:PATH'"
        )
    return Path(data_dir).expanduser()


def locate(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder holding dataset ``name``'s files, or None when they are not found anywhere searched."""
    if is_folder_name(name):
        root = folder_root(name, data_dir)
        has_split_dirs = bool(class_dirs(root / "train"))
        return root if has_split_dirs or class_dirs(root) else None
    found = find(get_spec(name), data_dir)
    return found.directory if found else None


def missing_message(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> str:
    """A message saying where netslim looked and which files to put where (with download URLs)."""
    roots = search_roots(data_dir)
    lines = [f"dataset {spec.name!r} not found. Looked in (in order): {', '.join(str(r) for r in roots)}"]
    target = roots[0] / spec.name
    for layout in spec.layouts:
        files = [f for split in layout.files.values() for f in split]
        suffix = " (each may be .gz)" if layout.gz_ok else ""
        sub = f" or {target / layout.subdirs[0]}" if layout.subdirs else ""
        lines.append(f"  put {', '.join(files)}{suffix} in {target}{sub}")
    urls = [r.urls[0] for r in spec.resources]
    if urls:
        unpack = " (unpack the archive)" if any(r.extract for r in spec.resources) else ""
        lines.append(f"  official files: {' '.join(urls)}{unpack}")
    lines.append(f"  or fetch and verify them: download=True (CLI: netslim datasets {spec.name} --download)")
    return "\n".join(lines)


def _missing_in_dir(spec: DatasetSpec, root: Path) -> str:
    """One line: which of ``spec``'s files are missing from the ``--data-dir`` folder ``root``."""
    best: tuple[Layout, list[str]] | None = None
    for layout in spec.layouts:
        names = [f for split in layout.files.values() for f in split]
        for directory in candidate_dirs(spec, layout, root, explicit=True):
            missing = [f for f in names if resolve_file(directory, f, layout.gz_ok) is None]
            if best is None or len(missing) < len(best[1]):
                best = (layout, missing)
    assert best is not None
    layout, missing = best
    suffix = " (or .gz)" if layout.gz_ok else ""
    fetch = f"netslim datasets {spec.name} --download --data-dir {root}" if spec.resources else ""
    return (
        f"dataset {spec.name!r} not found in --data-dir {root} (only that folder is searched): "
        f"missing {', '.join(missing)}{suffix}; put the files there (or in {root / spec.name})"
        + (f", or fetch them: {fetch}" if fetch else "")
    )


def require(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> Found:
    """Like :func:`find`, but raises DataNotFoundError naming the missing files when nothing is found."""
    found = find(spec, data_dir)
    if found is None:
        if data_dir is not None:
            raise DataNotFoundError(_missing_in_dir(spec, Path(data_dir).expanduser()))
        raise DataNotFoundError(missing_message(spec, data_dir))
    return found
