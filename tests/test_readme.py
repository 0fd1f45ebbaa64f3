"""Every README line is a test: its commands and its Python example run, at tiny budgets, as written.

The README shows the real commands; this file only adds budget flags (appended, so argparse's last value
wins: ``--epochs 10`` then ``--epochs 1``), fills the placeholders (``RUN``, ``CKPT`` ...) with files made
on tiny data in the real formats, and points ``$NETSLIM_DATA`` at that data. Extracted: the inline
commands of the "Command line" section (its table and prose), every fenced ``bash`` block, and every
fenced ``python`` block. A README command whose sub-command has no entry in :data:`BUDGETS` and no reason
in :data:`CHECKED_ELSEWHERE` fails :func:`test_every_readme_command_is_covered`, so a new line cannot slip
through untested.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import write_tiny_mnist

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Flags appended to each sub-command so that it finishes in seconds on tiny data ({ws}: the workspace).
BUDGETS: dict[str, str] = {
    "demo": "--epochs 1 --finetune-epochs 1 --max-batches 2 --val-size 64 --batch-size 32 --no-progress "
    "--run-dir {ws}/runs/demo",
    "models": "",
    "datasets": "",
    "train": "--width 0.25 --epochs 1 --max-batches 2 --val-size 64 --no-progress --run-dir {ws}/runs/train",
    "eval": "--val-size 64",
    "slim": "--width 0.25 --epochs 1 --finetune-epochs 1 --max-batches 2 --val-size 64 --no-progress "
    "--no-latency --run-dir {ws}/runs/slim",
    "prune": "",
    "prune-weights": "--epochs 1 --retrain-epochs 1 --max-batches 2 --val-size 64 --no-progress "
    "--run-dir {ws}/runs/prune-weights",
    "sensitivity": "--step 0.5 --max-batches 2 --val-size 64 --no-progress --run-dir {ws}/runs/sensitivity",
    "compress": "",
    "decompress": "",
    "measure": "--batch-sizes 1 --repeats 2 --warmup 1",
    "report": "",
    "export": "--calib-batches 1 --eval-batches 1 --repeats 2",
}

# README placeholders -> files in the workspace; per sub-command where one name means another file.
PLACEHOLDERS: dict[str, str] = {
    "RUN_DIR": "{ws}/run",
    "RUN": "{ws}/run",
    "CHECKPOINT": "{ws}/run/model.pt",
    "MODEL_OR_CKPT": "{ws}/run/model.pt",
    "CKPT": "{ws}/run/model.pt",
    "OTHER": "{ws}/lenet5.pt",
    "FILE": "{ws}/model.nsz",
    "OUT": "{ws}/out/pruned.pt",
}
PLACEHOLDERS_BY_COMMAND: dict[str, dict[str, str]] = {
    "sensitivity": {"CKPT": "{ws}/lenet5.pt"},  # the line names --model lenet5
    "decompress": {"CKPT": "{ws}/decompressed.pt"},  # an output here
}
# Files a line reads that another line writes: made first when missing, so each line runs on its own.
PREREQUISITES: dict[str, str] = {"decompress": "netslim compress {ws}/run/model.pt -o {ws}/model.nsz"}

# Lines not run here, with the reason (and the test that runs them, where one does).
CHECKED_ELSEWHERE: dict[str, str] = {
    "torchrun": "two processes for minutes: tests/test_ddp.py runs `torchrun --nproc_per_node=2 -m netslim "
    "train` and compares it with one process",
    "pip": "installs packages (tests never download); `make test` does the set-up",
}

# The Python example at a tiny budget: (text in the README, what runs instead). A missing text fails.
PYTHON_OVERRIDES: list[tuple[str, str]] = [
    (
        'get_loaders("fashion-mnist", batch_size=64)',
        'get_loaders("fashion-mnist", batch_size=32, val_size=64)',
    ),
    ("TrainConfig(epochs=10)", "TrainConfig(epochs=1, max_batches=2, progress=False)"),
]


@dataclass(frozen=True)
class Line:
    """One README command: its text, where it was found, and its argv after budgets and placeholders."""

    text: str
    where: str

    @property
    def kind(self) -> str:
        """``netslim SUB`` -> ``SUB``; ``make`` / ``torchrun`` / ``pip`` ... otherwise."""
        words = self.text.split()
        if words[0] == "netslim" and len(words) > 1:
            return words[1]
        if words[:3] == ["python", "-m", "netslim"] and len(words) > 3:
            return words[3]
        return words[0]


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


def _fenced(text: str, languages: tuple[str, ...]) -> list[str]:
    return re.findall(rf"^```(?:{'|'.join(languages)})\s*\n(.*?)^```", text, re.M | re.S)


def readme_commands(text: str) -> list[Line]:
    """The shell commands of the README, in order, each once."""
    found: list[Line] = []
    commands = _section(text, "Command line")
    for span in re.findall(r"`([^`\n]+)`", commands):
        if re.match(r"(netslim|torchrun|make|python -m netslim)\s", span):
            found.append(Line(span.strip(), "Command line section"))
    for block in _fenced(text, ("bash", "sh", "shell", "console")):
        for raw in block.splitlines():
            line = raw.strip().removeprefix("$ ")
            words = shlex.split(line, comments=True)
            if words:
                found.append(Line(shlex.join(words), "bash block"))
    unique: dict[str, Line] = {}
    for line in found:
        unique.setdefault(line.text, line)
    return list(unique.values())


README_TEXT = README.read_text()
COMMANDS = readme_commands(README_TEXT)
PYTHON_BLOCKS = _fenced(README_TEXT, ("python", "py"))


def _fill(text: str, ws: Path) -> str:
    return text.replace("{ws}", str(ws))


def argv_for(line: Line, ws: Path) -> list[str]:
    """The argv run for a ``netslim`` line: README words, placeholders filled, optional [...] parts
    included, budget flags appended."""
    names = {**PLACEHOLDERS, **PLACEHOLDERS_BY_COMMAND.get(line.kind, {})}
    pattern = re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")
    text = pattern.sub(lambda m: _fill(names[m.group(1)], ws), line.text.replace("[", "").replace("]", ""))
    words = shlex.split(text)
    words = words[1:] if words[0] == "netslim" else words[3:]  # netslim SUB ... / python -m netslim SUB ...
    return words + shlex.split(_fill(BUDGETS[line.kind], ws))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fashion-MNIST stand-in (IDX) under ``data/``, a trained tiny run in ``run/``, a LeNet-5 checkpoint."""
    import netslim
    from netslim.cli import main
    from netslim.models import create

    ws = tmp_path_factory.mktemp("readme")
    # 5,100 training images: commands without a --val-size flag (export's calibration) hold out 5,000
    write_tiny_mnist(ws / "data" / "fashion-mnist", n_train=5100, n_test=64)
    (ws / "out").mkdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("NETSLIM_DATA", str(ws / "data"))
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(
            ["train", "--model", "vgg11", "--width", "0.25", "--dataset", "fashion-mnist", "--epochs", "1",
             "--max-batches", "2", "--val-size", "64", "--no-progress", "--run-dir", str(ws / "run")]
        )  # fmt: skip
    mp.undo()
    assert code == 0
    netslim.save(create("lenet5", num_classes=10, in_channels=1), ws / "lenet5.pt")
    return ws


def _run_netslim(argv: list[str], line: Line) -> str:
    from netslim.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # argparse: unknown option or sub-command
        code = exc.code if isinstance(exc.code, int) else 2
    except Exception as exc:  # any crash is this README line failing
        pytest.fail(f"README line crashed: {line.text}\n  ran: netslim {shlex.join(argv)}\n  {exc!r}")
    if code != 0:
        tail = (err.getvalue() or out.getvalue())[-1500:]
        pytest.fail(
            f"README line failed (exit {code}): {line.text}\n  ran: netslim {shlex.join(argv)}\n{tail}"
        )
    return out.getvalue()


def _make_dry_run(line: Line) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    words = shlex.split(line.text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    proc = subprocess.run(
        ["make", "-n", *words[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"README line failed: {line.text}\n{proc.stderr[-1000:]}"


def test_every_readme_command_is_covered() -> None:
    """Each README command runs here or names the test that runs it; the extraction finds the README's
    command table and its Python example."""
    assert len(COMMANDS) >= 10 and PYTHON_BLOCKS, "the README's commands were not found: extraction broke"
    uncovered = [
        c.text
        for c in COMMANDS
        if c.kind not in BUDGETS and c.kind not in CHECKED_ELSEWHERE and c.kind != "make"
    ]
    assert not uncovered, f"README commands with no budget in tests/test_readme.py (add one): {uncovered}"


@pytest.mark.parametrize("line", COMMANDS, ids=[c.text for c in COMMANDS])
def test_readme_command(line: Line, workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README line runs and exits 0 (netslim lines in-process at a tiny budget, make targets dry-run)."""
    if line.kind in CHECKED_ELSEWHERE:
        pytest.skip(CHECKED_ELSEWHERE[line.kind])
    if line.kind == "make":
        _make_dry_run(line)
        return
    if "..." in line.text:
        pytest.fail(
            f"README line has an unfilled '...': {line.text}; give a runnable command or skip it here"
        )
    monkeypatch.setenv("NETSLIM_DATA", str(workspace / "data"))
    monkeypatch.chdir(tmp_path)  # default run folders (runs/...) and relative outputs land here
    prerequisite = PREREQUISITES.get(line.kind)
    if prerequisite:
        words = shlex.split(_fill(prerequisite, workspace))
        if not Path(words[-1]).exists():
            _run_netslim(words[1:], Line(prerequisite, "prerequisite"))
    _run_netslim(argv_for(line, workspace), line)


def test_readme_python_example(workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README's Python example runs as written, with only the budget changes of PYTHON_OVERRIDES."""
    monkeypatch.setenv("NETSLIM_DATA", str(workspace / "data"))
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(PYTHON_BLOCKS):
        code = block
        for old, new in PYTHON_OVERRIDES:
            if old in code:
                code = code.replace(old, new)
        missing = [old for old, _ in PYTHON_OVERRIDES if old not in "".join(PYTHON_BLOCKS)]
        assert not missing, f"README Python example changed; update PYTHON_OVERRIDES: {missing}"
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"README.md python block {i + 1}", "exec"), {"__name__": "__readme__"})
