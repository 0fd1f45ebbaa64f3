"""Models from outside the zoo: ``path/to/file.py:factory`` and ``package.module:factory`` specs.

:func:`resolve` is the one entry point that turns a model spec (what ``--model`` takes) into a model: a zoo
name goes to :func:`netslim.models.create`; ``FILE.py:FUNC`` loads ``FILE.py`` and calls ``FUNC``;
``pkg.mod:FUNC`` imports ``pkg.mod`` and calls ``FUNC``. The factory is called with the user's keyword
arguments plus the dataset's ``num_classes``/``in_channels``/``input_size`` where its signature accepts them.

The model is stamped with ``netslim_recipe``::

    {"name": "mynet-build", "factory": {"kind": "file", "path": "/abs/mynet.py", "sha256": "...",
     "function": "build"}, "kwargs": {...}, "input_shape": [C, H, W]}

so :func:`netslim.load` rebuilds it without pickles (:func:`create_from_factory_recipe`).

Trust model: loading a factory file executes its code. netslim runs a factory file only when you name it
(``--model FILE.py:FUNC`` / ``resolve("FILE.py:FUNC")``) or when a checkpoint you load records it and the
file is present at the recorded path; a checkpoint never carries code itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from netslim.errors import NetslimError

# the arguments netslim supplies from the dataset, passed only where the factory's signature accepts them
DATA_ARGS = ("num_classes", "in_channels", "input_size")
_FILE_MODULES: dict[tuple[str, str], Any] = {}


def is_factory_spec(spec: str) -> bool:
    """True for ``FILE.py:FUNC`` and ``pkg.module:FUNC`` specs (a zoo name has no colon)."""
    return isinstance(spec, str) and ":" in spec


def _split(spec: str) -> tuple[str, str]:
    source, _, func = spec.rpartition(":")
    if not source or not func.isidentifier():
        raise NetslimError(
            f"model spec {spec!r} should look like path/to/file.py:factory or package.module:factory "
            "(the part after the colon is the function that builds the model)"
        )
    return source, func


def _is_file_source(source: str) -> bool:
    return source.endswith(".py") or "/" in source or "\\" in source


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def spec_label(spec: str) -> str:
    """A short, path-free name for a spec (``mynet.py:build`` -> ``mynet-build``), for folder names."""
    if not is_factory_spec(spec):
        return spec
    source, _, func = spec.rpartition(":")
    stem = Path(source).stem if _is_file_source(source) else source.rsplit(".", 1)[-1]
    return f"{stem}-{func}"


def _load_file(path: Path, sha: str) -> Any:
    key = (str(path), sha)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    name = f"netslim_user_model_{sha[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise NetslimError(f"cannot load {path} as Python source; pass a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise NetslimError(f"running {path} failed ({type(exc).__name__}: {exc}); fix the file") from exc
    _FILE_MODULES[key] = module
    return module


def load_factory(spec: str) -> tuple[Callable[..., nn.Module], dict[str, Any]]:
    """Import the factory ``spec`` names; returns ``(function, factory record)`` (record as in the recipe).

    Raises NetslimError for a missing file, a module that does not import or a missing function.
    """
    source, func = _split(spec)
    if _is_file_source(source):
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise NetslimError(f"model file {source} does not exist; pass path/to/file.py:factory")
        sha = file_sha256(path)
        module = _load_file(path, sha)
        record: dict[str, Any] = {"kind": "file", "path": str(path), "sha256": sha, "function": func}
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise NetslimError(
                f"cannot import module {source!r} ({exc}); install it, put it on PYTHONPATH, or pass "
                "path/to/file.py:factory"
            ) from None
        record = {"kind": "module", "module": source, "function": func}
    fn = getattr(module, func, None)
    if not callable(fn):
        where = record.get("path", source)
        raise NetslimError(f"{where} has no function {func!r}; name the function that builds the model")
    return fn, record


def _accepts(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _json(kwargs: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(kwargs))
    except (TypeError, ValueError) as exc:
        raise NetslimError(
            f"arguments for {what} must be JSON-serializable so checkpoints can rebuild the model: {exc}"
        ) from None


def _call(fn: Callable[..., nn.Module], kwargs: dict[str, Any], spec: str) -> nn.Module:
    try:
        model = fn(**kwargs)
    except Exception as exc:
        raise NetslimError(
            f"model factory {spec} failed ({type(exc).__name__}: {exc}); check its arguments (--model-kwargs)"
        ) from exc
    if not isinstance(model, nn.Module):
        raise NetslimError(f"model factory {spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def create_from_factory(spec: str, *, input_shape: Sequence[int] | None = None, **kwargs: Any) -> nn.Module:
    """Build a model with the factory ``spec`` names and stamp it with a rebuildable recipe; returns it.

    ``kwargs`` holds the user's arguments (all passed; one the factory does not take raises NetslimError)
    and the dataset's ``num_classes``/``in_channels``/``input_size`` (passed only where accepted; None
    values are dropped). ``input_shape`` (C, H, W) is recorded for commands that need an example input.
    """
    fn, record = load_factory(spec)
    names, var_kw = _accepts(fn)
    data = {k: kwargs.pop(k) for k in DATA_ARGS if k in kwargs}
    unknown = sorted(k for k in kwargs if k not in names and not var_kw)
    if unknown:
        raise NetslimError(
            f"model factory {spec} does not take {', '.join(unknown)}; it accepts: "
            f"{', '.join(sorted(names)) or 'no keyword arguments'}"
        )
    call = dict(kwargs)
    for k, v in data.items():
        if v is not None and (k in names) and k not in call:
            call[k] = v
    call = _json(call, f"model factory {spec}")
    model = _call(fn, call, spec)
    recipe: dict[str, Any] = {"name": spec_label(spec), "factory": record, "kwargs": call}
    if input_shape is not None:
        recipe["input_shape"] = [int(v) for v in input_shape]
    model.netslim_recipe = recipe
    return model


def create_from_factory_recipe(recipe: dict[str, Any], where: str = "the checkpoint") -> nn.Module:
    """Rebuild a model from a factory recipe (see the module docstring); returns it.

    A recorded file is executed only if it is present at its recorded path; a changed file (other
    SHA-256) is used with a warning. Raises NetslimError saying what to do when it cannot be imported.
    """
    record = recipe.get("factory") or {}
    func = record.get("function")
    kind = record.get("kind")
    if kind == "file":
        path = Path(str(record.get("path", "")))
        if not path.is_file():
            raise NetslimError(
                f"{where} was built by {path}:{func}, which is missing; put {path} back, or pass the "
                f"unpruned model yourself: netslim.load(path, model=build(...))"
            )
        if record.get("sha256") and file_sha256(path) != record["sha256"]:
            warnings.warn(
                f"netslim: {path} changed since {where} was written; rebuilding the model with "
                "the current file",
                stacklevel=3,
            )
        spec = f"{path}:{func}"
    elif kind == "module":
        spec = f"{record.get('module')}:{func}"
    else:
        raise NetslimError(f"{where} holds an unknown model factory record {record!r}")
    try:
        fn, _ = load_factory(spec)
    except NetslimError as exc:
        raise NetslimError(
            f"cannot rebuild the model of {where}: {exc}; or pass the unpruned model "
            "yourself: netslim.load(path, model=build(...))"
        ) from None
    model = _call(fn, dict(recipe.get("kwargs", {})), spec)
    model.netslim_recipe = recipe
    return model
