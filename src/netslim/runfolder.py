"""Claiming a run folder: one writer at a time, and a finished run is never silently replaced.

Every command that writes a run folder (train, slim, demo, prune-weights, sensitivity) calls
:func:`claim_run_dir` (or :func:`claim_from_args` from the CLI) before it trains or writes anything:

- a lock file (:data:`netslim.pipelines.layout.LOCK`) records the holder (pid, host, command, start time);
  a second process on the same folder is refused at once with those details. A lock left by a process that
  is no longer running on this host is taken over, with a note on stderr;
- a folder that already holds a run (``config.json``, ``results.json``, a ``*.pt`` file, a phase's
  checkpoint) is refused unless the caller resumes it or explicitly overwrites it.

The lock is released by :func:`release` / :func:`release_all` (the CLI calls the latter when a command ends)
and at interpreter exit; a folder the claim created and nothing else wrote is removed again.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netslim._atomic import WriteError, make_dir
from netslim.errors import NetslimError
from netslim.pipelines.layout import CHECKPOINT, CONFIG, LOCK, RESULTS


class RunFolderError(NetslimError):
    """A run folder is in use by another process, or holds a run that would be replaced."""


@dataclass
class _Held:
    path: Path
    lock: Path
    created: bool
    depth: int = 1


_HELD: dict[Path, _Held] = {}


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def _read_holder(lock: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (its lock file is unreadable)"
    started = holder.get("started")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        if isinstance(started, int | float)
        else "?"
    )
    return f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('command') or '?'}, started {when})"


def existing_run_files(path: str | os.PathLike[str]) -> list[str]:
    """Names of the files in ``path`` that show it holds a run (config, results, models, checkpoints)."""
    root = Path(path)
    if not root.is_dir():
        return []
    found = [n for n in (CONFIG, RESULTS) if (root / n).is_file()]
    found += sorted(p.name for p in root.glob("*.pt") if p.is_file())
    found += sorted(f"{p.parent.name}/{p.name}" for p in root.glob(f"*/{CHECKPOINT}") if p.is_file())
    return found


def _take_lock(lock: Path, command: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.time()}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read_holder(lock)
            same_host = holder is not None and holder.get("host") == socket.gethostname()
            pid = holder.get("pid") if holder else None
            if same_host and isinstance(pid, int) and (pid == os.getpid() or not _pid_alive(pid)):
                print(
                    f"netslim: note: taking over the stale lock of {_describe(holder)}, which is no longer "
                    f"running, in {lock.parent}",
                    file=sys.stderr,
                )
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            raise RunFolderError(
                f"run folder {lock.parent} is in use by {_describe(holder)}; wait for it to end or use "
                f"another --run-dir (if that process is gone, delete {lock})"
            ) from None
        except OSError as exc:
            raise WriteError(f"cannot lock run folder {lock.parent}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(info) + "\n")
        return
    raise RunFolderError(f"could not lock run folder {lock.parent}: another process keeps taking it")


def claim_run_dir(
    path: str | os.PathLike[str], *, command: str, resume: bool = False, overwrite: bool = False
) -> Path:
    """Lock run folder ``path`` for this process and check it may be written; returns it as a Path.

    ``resume``: the folder's run is to be continued (it must exist). ``overwrite``: an existing run in it may
    be replaced. Claiming a folder this process already holds is allowed (counted; release as often).

    Raises:
        RunFolderError: another live process holds the folder, or it holds a run and neither ``resume`` nor
            ``overwrite`` was given, or ``resume`` was given for a folder that does not exist.
        WriteError: ``path`` is a file, or the folder cannot be created.
    """
    path = Path(path)
    key = _key(path)
    if key in _HELD:
        _HELD[key].depth += 1
        return path
    if path.exists() and not path.is_dir():
        raise WriteError(f"--run-dir {path} is a file, not a folder; give a folder path")
    if resume and not path.is_dir():
        raise RunFolderError(f"nothing to resume: run folder {path} does not exist; check --run-dir")
    created = not path.exists()
    make_dir(path, "run folder")
    lock = path / LOCK
    try:
        _take_lock(lock, command)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    _HELD[key] = _Held(path, lock, created)
    if not resume and not overwrite:
        files = existing_run_files(path)
        if files:
            release(path)
            shown = ", ".join(files[:4]) + (", ..." if len(files) > 4 else "")
            raise RunFolderError(
                f"run folder {path} already holds a run ({shown}); pass --resume to continue it, "
                "--overwrite to replace it, or another --run-dir"
            )
    return path


def claim_from_args(args: argparse.Namespace, command: str, default: str | os.PathLike[str]) -> Path:
    """:func:`claim_run_dir` for a CLI command: ``--run-dir`` (or ``default``), ``--resume``, ``--overwrite``.

    Raises:
        RunFolderError: ``--resume`` without ``--run-dir``, ``--resume`` with ``--overwrite``, or as
            :func:`claim_run_dir`.
    """
    resume = bool(getattr(args, "resume", False))
    overwrite = bool(getattr(args, "overwrite", False))
    run_dir = getattr(args, "run_dir", None)
    if resume and run_dir is None:
        raise RunFolderError("--resume needs --run-dir: give the folder of the run to continue")
    if resume and overwrite:
        raise RunFolderError("--resume continues a run and --overwrite replaces it: pass only one")
    return claim_run_dir(
        run_dir if run_dir is not None else default, command=command, resume=resume, overwrite=overwrite
    )


def release(path: str | os.PathLike[str]) -> None:
    """Release this process's claim on ``path`` (removing the folder if the claim created it and it is
    still empty); does nothing for a folder this process does not hold."""
    key = _key(Path(path))
    held = _HELD.get(key)
    if held is None:
        return
    held.depth -= 1
    if held.depth > 0:
        return
    del _HELD[key]
    holder = _read_holder(held.lock)
    if holder is None or holder.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            held.lock.unlink()
    if held.created:
        with contextlib.suppress(OSError):
            held.path.rmdir()  # only succeeds when empty


def release_all() -> None:
    """Release every run folder this process holds (the CLI calls this when a command ends)."""
    for key in list(_HELD):
        _HELD[key].depth = 1
        release(key)


atexit.register(release_all)
