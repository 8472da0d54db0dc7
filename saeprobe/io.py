"""Atomic writes: an interrupted stage never leaves a half-written output behind.

Outputs are written under temporary names beside their targets and moved into place only
when the whole block succeeds; a stage with several outputs moves them together. Files and
folders get the ordinary permissions of the user's umask."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _temporary_sibling(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_outputs(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield a temporary sibling of each output path (the block creates each as a file or a
    folder); all replace their targets only if the block succeeds, else all are removed."""
    targets = [Path(p) for p in paths]
    tmps = [_temporary_sibling(p) for p in targets]
    try:
        yield tmps
        for tmp, target in zip(tmps, targets, strict=True):
            if not tmp.exists():
                raise FileNotFoundError(f"the stage did not write its output {target}")
        for tmp, target in zip(tmps, targets, strict=True):
            if target.exists() and target.is_dir():
                shutil.rmtree(target)
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            if tmp.exists():
                _remove(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; it replaces `path` only if the block succeeds."""
    with atomic_outputs(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder that replaces `path` only if the block succeeds."""
    with atomic_outputs(path) as (tmp,):
        tmp.mkdir()
        yield tmp


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays sneak into metrics; JSON wants plain Python.
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
