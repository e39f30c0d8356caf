"""The code a stage runs: workspace modules its command imports, against its code deps.

`code_dep_problems` walks the imports (with `ast`, so nothing is imported) from the stage's job
module, and from the scripts its tools import (the Feast repo), and reports modules its deps
lack and code deps it never imports.
"""

import ast
import shlex
from collections.abc import Iterable
from pathlib import Path

from training.cli import COMMANDS

from .dvc_stages import REPO_ROOT, Stage, covered, is_code

#: Workspace packages, each at <name>/src/<name>.
WORKSPACE = ("shared_schema", "training")
#: Code a stage's tools import by path rather than by module name (Feast imports the repo).
SCRIPT_DIRS = ("feature_repo",)

#: Workspace modules no stage lists as a dep, and why a change to them cannot change an output.
NOT_DEPS: dict[str, str] = {
    "training.config": "declares params.yaml's types without defaults: every value it hands a "
    "step is params.yaml's, which DVC tracks key by key",
    "training.errors": "the exception type a failing step raises",
}


def _module_file(name: str) -> Path | None:
    """The source file of a workspace module, or None for anything else (nothing imported)."""
    top = name.partition(".")[0]
    if top not in WORKSPACE:
        return None
    base = REPO_ROOT / top / "src" / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str | None) -> set[str]:
    """Workspace modules a file imports anywhere (lazy imports in functions included)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else (module or "").rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
            if _module_file(candidate) is not None:
                found.add(candidate)
    return found


def code_closure(entry_modules: Iterable[str], entry_files: Iterable[Path] = ()) -> dict[str, str]:
    """Every workspace module reachable from the entries: {module: repo-relative file}."""
    seen: dict[str, str] = {}
    pending = [(name, _module_file(name)) for name in entry_modules]
    pending += [(None, path.resolve()) for path in entry_files]
    while pending:
        name, path = pending.pop()
        if path is None:
            continue
        if name is not None:
            if name in seen:
                continue
            seen[name] = path.relative_to(REPO_ROOT).as_posix()
        pending += [(found, _module_file(found)) for found in _imports(path, name)]
    return seen


def job_module(cmd: str) -> str:
    """The job module a `car-train <command> ...` stage command runs."""
    words = shlex.split(cmd)
    if not words or words[0] != "car-train":
        raise ValueError(f"not a car-train command: {cmd!r}")
    command = next(word for word in words[1:] if word in COMMANDS)
    return COMMANDS[command][0]


def code_dep_problems(stage: Stage, root: Path = REPO_ROOT) -> list[str]:
    """Modules the stage imports that its deps lack, and code deps it never imports.

    Args:
        stage: The stage.
        root: Where the stage's script deps (`SCRIPT_DIRS`) are read from.
    """
    # Scripts the stage's tools import (the Feast repo's definitions) are walked as well.
    scripts = [dep for dep in stage.deps if dep.endswith(".py") and covered(dep, SCRIPT_DIRS)]
    closure = code_closure([job_module(stage.cmd)], [root / dep for dep in scripts])
    needed = {
        name: path
        for name, path in closure.items()
        if name not in NOT_DEPS and (REPO_ROOT / path).read_text(encoding="utf-8").strip()
    }
    problems = [
        f"stage {stage.name}: runs {name} ({path}), which its deps lack"
        for name, path in sorted(needed.items())
        if not covered(path, stage.deps)
    ]
    imported = set(closure.values()) | set(scripts)
    problems += [
        f"stage {stage.name}: dep {dep} is code the stage never imports"
        for dep in stage.deps
        if dep.endswith(".py") and is_code(dep) and dep not in imported
    ]
    return problems
