"""The code a DVC stage runs: the one import walker behind `make generate` and its tests.

A stage's code is the import closure of the job module its `car-train <command>` runs, walked
with `ast` (nothing is imported), lazy imports inside functions included, plus what the scripts
its tools import by path (the Feast repo) import. Every non-empty workspace module in it is a
code dep, `training/config.py` and `training/errors.py` included: no module is excused, so no
judgement about which change "cannot matter" can go stale.

The dispatcher `training/cli.py` runs in every stage too (it sets the process up, builds the
MLflow service, maps errors to exit codes): it and what it imports at module level are code deps
of every stage. Its functions' lazy imports are not walked: the parser imports another
command's choices (`outcome`), and the job itself is reached by a computed name, which is why
the walk starts again at the job module `training.cli.COMMANDS` names for the stage's command.
"""

import ast
import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Code a stage's tools import by path rather than by module name (Feast imports the repo).
SCRIPT_DIRS = ("feature_repo",)
_TEMPLATE = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


@cache
def workspace(root: Path = REPO_ROOT) -> tuple[str, ...]:
    """The uv workspace's packages (pyproject.toml's members), each at <name>/src/<name>."""
    with (root / "pyproject.toml").open("rb") as file:
        return tuple(tomllib.load(file)["tool"]["uv"]["workspace"]["members"])


def code_dirs(root: Path = REPO_ROOT) -> tuple[str, ...]:
    """Where the repository's source lives: a dep under one of them is code, not data."""
    return (*(f"{name}/src" for name in workspace(root)), *SCRIPT_DIRS)


@dataclass(frozen=True)
class Stage:
    """One dvc.yaml stage with params substituted: outs include metrics and plots."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]


def lookup(params: Mapping[str, Any], key: str) -> Any:
    """`a.b.c` in nested params."""
    value: Any = params
    for part in key.split("."):
        value = value[part]
    return value


def substitute(text: str, params: Mapping[str, Any]) -> str:
    """DVC's `${key}` templating of one string."""
    return _TEMPLATE.sub(lambda match: str(lookup(params, match.group(1))), text)


def entry_path(item: str | Mapping[str, Any]) -> str:
    """A deps/outs entry is a path or a one-key mapping {path: options}."""
    return item if isinstance(item, str) else next(iter(item))


def load_stages(dvc_yaml: Mapping[str, Any], params: Mapping[str, Any]) -> list[Stage]:
    """The stages of a parsed dvc.yaml, in file order, with `${...}` substituted."""
    stages = []
    for name, raw in dvc_yaml["stages"].items():

        def paths(*keys: str, raw: Mapping[str, Any] = raw) -> tuple[str, ...]:
            return tuple(
                os.path.normpath(substitute(entry_path(item), params))
                for key in keys
                for item in raw.get(key, [])
            )

        stages.append(
            Stage(
                name=name,
                cmd=substitute(raw["cmd"], params),
                deps=paths("deps"),
                outs=paths("outs", "metrics", "plots"),
                params=tuple(entry_path(item) for item in raw.get("params", [])),
            )
        )
    return stages


def read_yaml(name: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """A YAML file of the repository (dvc.yaml, dvc.lock, params.yaml) as plain data."""
    import yaml

    raw: dict[str, Any] = yaml.safe_load((root / name).read_text(encoding="utf-8"))
    return raw


def covered(path: str, declared: Iterable[str]) -> bool:
    """Whether `path` is a declared path or inside a declared directory."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


def is_code(path: str, root: Path = REPO_ROOT) -> bool:
    """A dep that is source in the repository (not data)."""
    return covered(path, code_dirs(root))


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of a workspace module, or None for anything else (nothing imported)."""
    top = name.partition(".")[0]
    if top not in workspace(root):
        return None
    base = root / top / "src" / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str | None, root: Path, *, lazy: bool = True) -> set[str]:
    """Workspace modules a file imports: anywhere, or at module level only (`lazy=False`)."""
    names: set[str] = set()
    module = module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree) if lazy else tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        # Importing a.b.c runs the packages a and a.b first.
        for end in range(1, len(parts) + 1):
            candidate = ".".join(parts[:end])
            if _module_file(candidate, root) is not None:
                found.add(candidate)
    return found


def code_closure(
    entry_modules: Iterable[str], entry_files: Iterable[Path] = (), root: Path = REPO_ROOT
) -> dict[str, str]:
    """Every workspace module reachable from the entries: {module: root-relative file}."""
    seen: dict[str, str] = {}
    pending: list[tuple[str | None, Path | None]] = [
        (name, _module_file(name, root)) for name in entry_modules
    ]
    pending += [(None, path) for path in entry_files]
    while pending:
        name, path = pending.pop()
        if path is None:
            continue
        if name is not None:
            if name in seen:
                continue
            seen[name] = path.relative_to(root).as_posix()
        pending += [(found, _module_file(found, root)) for found in _imports(path, name, root)]
    return seen


def job_module(stage: Stage) -> str:
    """The job module a `car-train <command> ...` stage command runs."""
    from training.cli import COMMANDS

    words = shlex.split(stage.cmd)
    command = next((word for word in words[1:] if word in COMMANDS), None)
    if not words or words[0] != "car-train" or command is None:
        raise ValueError(
            f"stage {stage.name}: cannot tell the code of {stage.cmd!r}, "
            "which is not a car-train command"
        )
    return COMMANDS[command][0]


#: The dispatcher every `car-train` stage runs before its job.
CLI_MODULE = "training.cli"


def _closure(stage: Stage, root: Path) -> dict[str, str]:
    # Scripts the stage's tools import (the Feast repo's definitions) are walked as well.
    scripts = [
        root / dep for dep in stage.deps if dep.endswith(".py") and covered(dep, SCRIPT_DIRS)
    ]
    entries, found = [job_module(stage)], {}
    cli = _module_file(CLI_MODULE, root)
    if cli is not None:  # the dispatcher and its module-level imports, not its lazy ones
        found[CLI_MODULE] = cli.relative_to(root).as_posix()
        entries += sorted(_imports(cli, CLI_MODULE, root, lazy=False))
    return found | code_closure(entries, scripts, root)


def stage_code(stage: Stage, root: Path = REPO_ROOT) -> dict[str, str]:
    """The workspace modules the stage runs, {module: file}: what its code deps must be.

    Empty files (bare package markers) hold nothing a change could alter, and are left out.
    """
    return {
        name: path
        for name, path in sorted(_closure(stage, root).items())
        if (root / path).read_text(encoding="utf-8").strip()
    }


def workspace_deps(deps: Iterable[str], root: Path = REPO_ROOT) -> list[str]:
    """The deps that are workspace modules: the ones `make generate` writes."""
    sources = tuple(f"{name}/src" for name in workspace(root))
    return [dep for dep in deps if dep.endswith(".py") and covered(dep, sources)]


def code_dep_problems(stage: Stage, root: Path = REPO_ROOT) -> list[str]:
    """Modules the stage runs that its deps lack, and code deps it never imports."""
    closure = _closure(stage, root)
    needed = stage_code(stage, root)
    problems = [
        f"stage {stage.name}: runs {name} ({path}), which its deps lack"
        for name, path in needed.items()
        if path not in stage.deps
    ]
    problems += [
        f"stage {stage.name}: dep {dep} is "
        + ("an empty module" if dep in closure.values() else "code the stage never imports")
        for dep in workspace_deps(stage.deps, root)
        if dep not in needed.values()
    ]
    return problems
