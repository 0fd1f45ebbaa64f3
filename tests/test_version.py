"""The version is defined once (``netslim/_version.py``): the package, the CLI and the build agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import netslim
from netslim._version import __version__ as defined
from netslim.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_cli_version_matches_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"netslim {netslim.__version__}"
    assert netslim.__version__ == defined


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "netslim._version.__version__"}


def test_license_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_torch_requirement_is_a_bounded_range_with_the_tested_version() -> None:
    from packaging.requirements import Requirement  # pytest's own dependency

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(Requirement(d) for d in project["dependencies"] if d.startswith("torch"))
    assert "2.13.0" in torch_req.specifier  # the version the README and the Makefile name as tested
    assert any(s.operator == "<" for s in torch_req.specifier), "an upper bound, never an open `torch`"
