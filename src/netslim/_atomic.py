"""Atomic file writes: every file netslim writes goes through here.

The content is written to a temporary file in the destination's folder (``.NAME.<random>.tmp``), flushed and
fsynced, then renamed over the destination with :func:`os.replace`, so a reader (or a crash, a full disk or a
kill) sees either the old file or the new one, never half of one. The temporary file is removed on any
failure. File-system failures become :class:`WriteError` with a one-line message naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from netslim.errors import NetslimError


def _default_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 less the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _default_mode()


class WriteError(NetslimError, OSError):
    """A file could not be written (a folder in the way, no space, no permission); nothing was changed."""


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno == errno.EFBIG:
        return "the file is larger than allowed (file-size limit or file system)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc) or type(exc).__name__


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (itself, or what it was raised from or while handling), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def check_writable_target(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Check, before any work, that ``path`` can name a file to write; returns it as a :class:`Path`.

    Raises:
        WriteError: ``path`` is a folder, or one of its parents is a file.
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{what} {path} is a directory; give the path of a file (in it or elsewhere)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise WriteError(f"cannot write {what} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise WriteError(f"cannot write {what} {path}: permission denied in {parent}")
            break
    return path


def make_dir(path: str | os.PathLike[str], what: str = "folder") -> Path:
    """Create folder ``path`` (and its parents) if needed; returns it.

    Raises:
        WriteError: a file is in the way, or the folder cannot be created.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WriteError(f"{what} {path} is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WriteError(f"cannot create {what} {path}: a file is in the way") from None
    except NotADirectoryError:
        raise WriteError(f"cannot create {what} {path}: one of its parents is a file") from None
    except OSError as exc:
        raise WriteError(f"cannot create {what} {path}: {_reason(exc)}") from None
    return path


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fh)`` on a binary temp file next to ``path``, then rename it over ``path``; returns path.

    Raises:
        WriteError: the folder cannot be created, ``path`` is a folder, or writing fails (full disk, size
            limit, permissions); the temp file is removed and any previous ``path`` is left untouched.
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a directory; give a file name")
    make_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {_reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            # mkstemp makes the file private (0600); give it the mode a plain open() would (or the old file's)
            os.fchmod(fh.fileno(), path.stat().st_mode & 0o7777 if path.exists() else _MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, NetslimError):
            raise
        os_error = _os_error(exc)
        if os_error is not None:
            raise WriteError(f"cannot write {path}: {_reason(os_error)}; nothing was changed") from None
        if isinstance(exc, RuntimeError) and "write" in str(exc).lower():
            # torch.save reports a failed write (e.g. a full disk) as a RuntimeError from its zip writer
            raise WriteError(
                f"cannot write {path}: the disk is full or the file-size limit was "
                "reached; nothing was changed"
            ) from None
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data`` to ``path``; returns the path (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Atomically write ``obj`` as JSON (non-JSON values as ``str``) plus a newline; returns the path."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Atomically ``torch.save`` ``obj`` to ``path`` (a crash mid-write keeps the old file); returns path."""
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))
