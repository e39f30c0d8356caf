"""Checks on dvc.yaml and dvc.lock that the generator does not write, and broken copies of them.

Each check returns problems as sentences naming the stage and the path at fault, so a test
asserts an empty list and shows the sentences when it is not. Here:

* `templating_problems`: every data path in dvc.yaml comes from params.yaml (`${...}`);
* `lock_problems`: dvc.lock records each stage's command, params and code deps as they are now.

Reading the stages and the code each one runs is `scripts.stage_code` (`make generate` uses it
too); `stage_sandbox` checks what a stage reads and writes.
"""

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scripts.dvc_deps import code_record
from scripts.stage_code import Stage, entry_path, is_code, lookup


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
            md5 = code_record(dep, root)["md5"]
            if entry is None:
                problems.append(f"stage {stage.name}: dvc.lock does not record dep {dep}")
            elif entry.get("hash") != "md5":
                problems.append(f"stage {stage.name}: {dep} was not hashed by DVC 3 (hash: md5)")
            elif entry.get("md5") != md5:
                problems.append(
                    f"stage {stage.name}: dvc.lock records md5 {entry.get('md5')} for {dep}, "
                    f"the file's is {md5}"
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
