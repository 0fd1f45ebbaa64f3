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
from typing import Any

import pytest

from helpers import write_tiny_mnist

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Flags appended to each sub-command so that it finishes in seconds on tiny data ({ws}: the workspace;
# {width}: ``--width 0.25`` when the line trains a zoo model, nothing for a model factory of the user's).
BUDGETS: dict[str, str] = {
    "demo": "--epochs 1 --finetune-epochs 1 --max-batches 2 --val-size 64 --batch-size 32 --no-progress",
    "models": "",
    "datasets": "",
    "train": "{width} --epochs 1 --max-batches 2 --val-size 64 --no-progress",
    "eval": "--val-size 64",
    "slim": "{width} --epochs 1 --finetune-epochs 1 --max-batches 2 --val-size 64 --no-progress --no-latency",
    "prune": "",
    "prune-weights": "--epochs 1 --retrain-epochs 1 --max-batches 2 --val-size 64 --no-progress",
    "sensitivity": "--step 0.5 --max-batches 2 --val-size 64 --no-progress",
    "compress": "",
    "decompress": "",
    "measure": "--batch-sizes 1 --repeats 2 --warmup 1",  # measure ... --sparse: the same
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
    "PRUNED_CKPT": "{ws}/weights/pruned.pt",
    "OTHER": "{ws}/lenet5.pt",
    "FILE": "{ws}/model.nsz",
    "OUT": "{ws}/out/pruned.pt",
}
PLACEHOLDERS_BY_COMMAND: dict[str, dict[str, str]] = {
    "sensitivity": {"CKPT": "{ws}/lenet5.pt"},  # the line names --model lenet5
    "decompress": {"CKPT": "{ws}/decompressed.pt"},  # an output here
}
# Files a line reads that another line writes: made first when missing, so each line also runs alone.
MAKERS: dict[str, str] = {
    "{ws}/model.nsz": "netslim compress {ws}/run/model.pt -o {ws}/model.nsz",
    "{ws}/weights/pruned.pt": "netslim prune-weights --model lenet300_100 --quality 1.0 --rounds 1 "
    "--epochs 1 --retrain-epochs 1 --max-batches 2 --val-size 64 --no-compress --no-progress "
    "--run-dir {ws}/weights",
}
# Files the README assumes the reader has written (its "your own model" example).
README_FILES: dict[str, str] = {
    "mynet.py": """
from torch import nn


def build(width=16, num_classes=10, in_channels=1):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )
""",
}

# Lines not run here, with the reason (and the test that runs them, where one does).
CHECKED_ELSEWHERE: dict[str, str] = {
    "torchrun": "two processes for minutes: tests/train/test_ddp.py runs "
    "`torchrun --nproc_per_node=2 -m netslim train` and compares it with one process",
    "pip": "installs packages (tests never download); `make test` does the set-up",
}

# The Python examples at a tiny budget: (regex on the README text, replacement). The first must match.
PYTHON_OVERRIDES: list[tuple[str, str]] = [
    (r"TrainConfig\(epochs=\d+", "TrainConfig(epochs=1, max_batches=2, progress=False"),
    # a fragment's "Trainer(model, ..., callbacks=...)": the reader's own loaders, here the prelude's batches
    (r"Trainer\((\w+), \.\.\.,", r"Trainer(\1, _batches, None, TrainConfig(epochs=1, progress=False),"),
    (r'get_loaders\(("[^"]+")', r"get_loaders(\1, val_size=64"),
    # 64 validation images (the examples use the default 5,000): into a given data_kwargs, or a new one
    (r"data_kwargs=\{", 'data_kwargs={"val_size": 64, '),
    (
        r'(SlimmingConfig\((?![\s\S]*data_kwargs)[\s\S]*?dataset="[^"]+",)',
        r'\1 data_kwargs={"val_size": 64},',
    ),
]


# README lines known to fail, with the issue that fixes them: strict, so the fix turns this red until the
# entry is removed.
KNOWN_FAILING: dict[str, str] = {}

# Fragments continue from what the reader already has: (regex a block matches, code run before it).
PYTHON_PRELUDES: list[tuple[str, str]] = [
    (
        r"add_channel_gates\(model",  # "a net without BatchNorm", on 3x32x32 inputs
        """
import torch, netslim
from torch import nn
from netslim.train import Trainer, TrainConfig
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
_batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(2)]
""",
    ),
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
    included, ``...`` in a path globbed in the workspace, budget flags appended."""
    names = {**PLACEHOLDERS, **PLACEHOLDERS_BY_COMMAND.get(line.kind, {})}
    pattern = re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")
    text = pattern.sub(lambda m: _fill(names[m.group(1)], ws), line.text.replace("[", "").replace("]", ""))
    words = shlex.split(text)
    words = words[1:] if words[0] == "netslim" else words[3:]  # netslim SUB ... / python -m netslim SUB ...
    for i, word in enumerate(words):
        if (
            "..." in word and "/" in word
        ):  # e.g. runs/slim-mynet-build-.../finetuned.pt: an earlier line's run
            matches = sorted(ws.glob(word.replace("...", "*")))
            assert matches, (
                f"README line {line.text!r}: nothing matches {word}; run the line that makes it first"
            )
            words[i] = str(matches[-1])
    model = words[words.index("--model") + 1] if "--model" in words[:-1] else ""
    width = "--width 0.25" if model and ":" not in model else ""
    return words + shlex.split(_fill(BUDGETS[line.kind], ws).replace("{width}", width))


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
    for name, text in README_FILES.items():
        (ws / name).write_text(text.lstrip())
    return ws


def _run_netslim(argv: list[str], line: Line) -> str:
    from netslim.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
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


def _params() -> list[Any]:
    return [
        pytest.param(c, id=c.text, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILING[c.text])])
        if c.text in KNOWN_FAILING
        else pytest.param(c, id=c.text)
        for c in COMMANDS
    ]


@pytest.mark.parametrize("line", _params())
def test_readme_command(line: Line, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README line runs and exits 0 (netslim lines in-process at a tiny budget, make targets dry-run)."""
    if line.kind in CHECKED_ELSEWHERE:
        pytest.skip(CHECKED_ELSEWHERE[line.kind])
    if line.kind == "make":
        _make_dry_run(line)
        return
    if "..." in line.text.split():
        pytest.fail(
            f"README line has an unfilled '...': {line.text}; give a runnable command or skip it here"
        )
    monkeypatch.setenv("NETSLIM_DATA", str(workspace / "data"))
    monkeypatch.chdir(workspace)  # one folder, as a reader following the README: runs/... land here
    reads = argv_for_text(line, workspace)
    for target, maker in MAKERS.items():
        path = _fill(target, workspace)
        if path in reads and not Path(path).exists():
            words = shlex.split(_fill(maker, workspace))
            _run_netslim(words[1:], Line(maker, "maker"))
    _run_netslim(argv_for(line, workspace), line)


def argv_for_text(line: Line, ws: Path) -> list[str]:
    """The README words with placeholders filled (no globbing): to see which made files a line reads."""
    names = {**PLACEHOLDERS, **PLACEHOLDERS_BY_COMMAND.get(line.kind, {})}
    pattern = re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")
    return pattern.sub(lambda m: _fill(names[m.group(1)], ws), line.text).split()


def test_readme_python_example(workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README's Python examples run as written, with only the budget changes of PYTHON_OVERRIDES."""
    monkeypatch.setenv("NETSLIM_DATA", str(workspace / "data"))
    monkeypatch.chdir(tmp_path)
    first, _ = PYTHON_OVERRIDES[0]
    assert re.search(first, "".join(PYTHON_BLOCKS)), (
        f"README Python example changed; update PYTHON_OVERRIDES ({first})"
    )
    for i, block in enumerate(PYTHON_BLOCKS):
        code = "".join(prelude for pattern, prelude in PYTHON_PRELUDES if re.search(pattern, block)) + block
        for pattern, replacement in PYTHON_OVERRIDES:
            code = re.sub(pattern, replacement, code, flags=re.S)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, f"README.md python block {i + 1}", "exec"), {"__name__": "__readme__"})
        except Exception as exc:  # the example failing is this test failing, with the block named
            pytest.fail(f"README Python block {i + 1} failed: {exc!r}\n{block}")
