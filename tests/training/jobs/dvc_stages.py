"""dvc.yaml and dvc.lock as the wiring checks read them, and the checks on them alone.

Each check returns problems as sentences naming the stage and the path or module at fault, so a
test asserts an empty list and shows the sentences when it is not. Here:

* `templating_problems`: every data path in dvc.yaml comes from params.yaml (`${...}`);
* `lock_problems`: dvc.lock records each stage's command, params and code deps as they are now.

`stage_code` checks the code a stage imports, `stage_sandbox` what it reads and writes.
"""

import copy
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
#: Where the repository's source lives: a dep under one of them is code, not data.
CODE_DIRS = ("shared_schema/src", "training/src", "feature_repo")
_TEMPLATE = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


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


def named(stages: Iterable[Stage], name: str) -> Stage:
    """The stage called `name`."""
    return next(stage for stage in stages if stage.name == name)


def without(dvc_yaml: Mapping[str, Any], stage: str, key: str, path: str) -> dict[str, Any]:
    """A copy of a parsed dvc.yaml with one entry removed from one stage's `key` list."""
    broken: dict[str, Any] = copy.deepcopy(dict(dvc_yaml))
    entries = broken["stages"][stage][key]
    kept = [item for item in entries if entry_path(item) != path]
    if len(kept) != len(entries) - 1:
        raise ValueError(f"stage {stage} has no {key} entry {path}")
    broken["stages"][stage][key] = kept
    return broken


def covered(path: str, declared: Iterable[str]) -> bool:
    """Whether `path` is a declared path or inside a declared directory."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


def is_code(path: str) -> bool:
    """A dep that is source in the repository (not data)."""
    return covered(path, CODE_DIRS)


def templating_problems(dvc_yaml: Mapping[str, Any]) -> list[str]:
    """Data paths written literally in dvc.yaml instead of `${...}` from params.yaml."""
    problems = []
    for name, raw in dvc_yaml["stages"].items():
        for key in ("deps", "outs", "metrics", "plots"):
            for item in raw.get(key, []):
                path = entry_path(item)
                if "${" not in path and not is_code(path):
                    problems.append(
                        f"stage {name}: {key} path {path!r} is written literally; "
                        "name it in params.yaml and use ${...}"
                    )
    return problems


def md5_file(path: Path) -> str:
    """The md5 DVC 3 records for a file (`hash: md5`): of the file's bytes as they are."""
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def fresh_lock(stages: Iterable[Stage], params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """What `dvc repro` would record for the stages' commands, params and code deps now."""
    return {
        "schema": "2.0",
        "stages": {
            stage.name: {
                "cmd": stage.cmd,
                "deps": [
                    {"path": dep, "hash": "md5", "md5": md5_file(root / dep)}
                    for dep in filter(is_code, stage.deps)
                ],
                "params": {"params.yaml": {key: lookup(params, key) for key in stage.params}},
            }
            for stage in stages
        },
    }


def lock_problems(
    stages: Iterable[Stage], lock: Mapping[str, Any], params: Mapping[str, Any], root: Path
) -> list[str]:
    """Where dvc.lock differs from the stages as dvc.yaml, params.yaml and the code are now."""
    problems = []
    locked_stages = lock.get("stages", {})
    for stage in stages:
        locked = locked_stages.get(stage.name)
        if locked is None:
            problems.append(f"stage {stage.name}: missing from dvc.lock")
            continue
        if locked.get("cmd") != stage.cmd:
            problems.append(f"stage {stage.name}: dvc.lock has cmd {locked.get('cmd')!r}")
        recorded = {entry["path"]: entry for entry in locked.get("deps", [])}
        for dep in filter(is_code, stage.deps):
            entry = recorded.get(dep)
            if entry is None:
                problems.append(f"stage {stage.name}: dvc.lock does not record dep {dep}")
            elif entry.get("hash") != "md5":
                problems.append(f"stage {stage.name}: {dep} was not hashed by DVC 3 (hash: md5)")
            elif entry.get("md5") != md5_file(root / dep):
                problems.append(
                    f"stage {stage.name}: dvc.lock records md5 {entry.get('md5')} for {dep}, "
                    f"the file's is {md5_file(root / dep)}"
                )
        problems += [
            f"stage {stage.name}: dvc.lock records dep {path}, which dvc.yaml no longer declares"
            for path in recorded
            if path not in stage.deps
        ]
        locked_params = locked.get("params", {}).get("params.yaml", {})
        for key in stage.params:
            if locked_params.get(key) != lookup(params, key):
                problems.append(f"stage {stage.name}: dvc.lock records another value of {key}")
    return problems
