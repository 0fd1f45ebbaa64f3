"""Opt-in download of a dataset's official files, verified against their published MD5 checksums.

Every file is written to a temporary name and renamed only once its checksum matches, so an interrupted or
corrupted download never leaves a file that later looks complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from netslim.data.registry import DatasetSpec, Resource
from netslim.errors import CorruptFileError, DataNotFoundError

_TIMEOUT_S = 60


def file_md5(path: Path) -> str:
    """The hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, md5: str) -> None:
    """Raise CorruptFileError when ``path``'s MD5 is not ``md5``."""
    actual = file_md5(path)
    if actual != md5:
        raise CorruptFileError(
            f"{path.name}: checksum mismatch (md5 {actual}, expected {md5}); download it again"
        )


def _fetch(url: str, dest: Path) -> None:
    """Copy ``url`` to ``dest`` (tests replace this function, so nothing ever touches the network there)."""
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def fetch_verified(resource: Resource, directory: Path) -> Path:
    """Download ``resource`` into ``directory`` (trying each mirror), verify it, and return its path.

    An existing file with the right checksum is reused. Raises DataNotFoundError when every mirror fails.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / resource.filename
    if final.is_file() and file_md5(final) == resource.md5:
        return final
    errors = []
    for url in resource.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{resource.filename}.", suffix=".part", dir=directory)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch(url, tmp)
            verify(tmp, resource.md5)
            os.replace(tmp, final)
            return final
        except (OSError, CorruptFileError) as exc:  # URLError and timeouts are OSErrors
            errors.append(f"{url}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataNotFoundError(
        f"could not download {resource.filename} into {directory}:\n  "
        + "\n  ".join(errors)
        + f"\nDownload it by hand (md5 {resource.md5}) and put it in {directory}"
    )


def _extract(archive: Path, directory: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")  # "data" refuses absolute paths, links out and devices


def download(spec: DatasetSpec, root: Path) -> Path:
    """Fetch every official file of ``spec`` into ``root/<name>/``, unpack archives; return that folder."""
    directory = Path(root) / spec.name
    for resource in spec.resources:
        path = fetch_verified(resource, directory)
        if resource.extract:
            _extract(path, directory)
    return directory
