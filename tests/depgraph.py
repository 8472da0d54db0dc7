"""What each pipeline stage reads: its code (the package modules its entry point imports,
transitively, found by walking the AST) and its declarations in dvc.yaml."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("saeprobe", "stages")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = root.joinpath(*parts)
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Modules of our packages that `path` imports (at any depth of the file)."""
    tree = ast.parse(path.read_text())
    here = ".".join(path.relative_to(root).with_suffix("").parts)
    package = (
        here.rsplit(".", 1)[0] if path.name != "__init__.py" else here.removesuffix(".__init__")
    )
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return {n for n in names if module_file(n, root) is not None}


def code_closure(entry: str, root: Path = ROOT) -> set[Path]:
    """Files of every module `entry` imports, transitively, with the packages' __init__s
    (importing a.b.c runs a/__init__ and a/b/__init__ first)."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        path = module_file(name, root)
        if path is not None:
            todo += sorted(imported_modules(path, root) - seen)
    return {module_file(n, root).relative_to(root) for n in seen if module_file(n, root)}


def stage_templates(root: Path = ROOT) -> dict[str, dict]:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def stage_body(stage: dict) -> dict:
    return stage.get("do", stage)


def entry_module(stage: dict) -> str:
    cmd = stage_body(stage)["cmd"]
    words = cmd.split()
    return words[words.index("-m") + 1]


def code_deps(stage: dict) -> list[str]:
    """Declared dependencies inside the packages (no interpolation)."""
    return [
        d for d in stage_body(stage).get("deps", []) if d.split("/")[0] in PACKAGES and "$" not in d
    ]


def covered(path: Path, declared: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in declared)
