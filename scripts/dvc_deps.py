"""Write each stage's code deps into dvc.yaml, and dvc.lock's records of them: `make generate`.

A stage's code deps are the workspace modules it runs (`scripts.stage_code`), one per line at
the end of its `deps:` list, sorted. The rest of dvc.yaml (comments, data deps, the Feast repo's
files, params, outs) is left as written: only the lines of workspace modules are rewritten.

dvc.lock then records every code dep (workspace modules and the Feast repo) with the md5 and
size of the file as it is, written by DVC's own YAML writer in DVC's order (deps sorted by
path), exactly as `dvc repro` records them; data deps and outs are kept as they are. That
records the code without running anything: it is right for changes that leave every output the
same (a moved helper, a refactor). A change to what a stage computes needs `make train`: the
end-to-end test's fresh `dvc repro` must write the committed dvc.lock byte for byte.

`scripts.generated` checks and writes both files, with k8s/'s generated copies
(`make generate`; tests/training/jobs/test_dvc_deps.py checks them the same way).
"""

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from scripts.stage_code import REPO_ROOT, Stage, is_code, load_stages, stage_code, workspace_deps

DVC_YAML: Final = "dvc.yaml"
DVC_LOCK: Final = "dvc.lock"
PARAMS: Final = "params.yaml"

_STAGE = re.compile(r"^  (?P<name>[\w-]+):\s*$")
_DEPS = re.compile(r"^    deps:\s*$")
_ITEM = re.compile(r"^      - (?P<path>\S+)\s*$")
#: Deeper than a stage's keys: a line of its `deps:` list (an item, its options, a comment).
_IN_LIST = re.compile(r"^ {6}|^\s*$")


class LayoutError(ValueError):
    """dvc.yaml or dvc.lock is not laid out as the generator can rewrite."""


def _stages(yaml_text: str, root: Path) -> list[Stage]:
    params = yaml.safe_load((root / PARAMS).read_text(encoding="utf-8"))
    return load_stages(yaml.safe_load(yaml_text), params)


def code_deps(yaml_text: str, root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """{stage: the files of the workspace modules it runs}, for the stages of a dvc.yaml."""
    return {
        stage.name: list(stage_code(stage, root).values()) for stage in _stages(yaml_text, root)
    }


def _rewrite_list(block: list[str], code: list[str], root: Path) -> list[str]:
    """One `deps:` list without its workspace-module lines, then `code` after its last item."""
    kept = [
        line
        for line in block
        if not ((item := _ITEM.match(line)) and workspace_deps([item["path"]], root))
    ]
    end = len(kept)
    while end and not kept[end - 1].strip():
        end -= 1  # the blank lines before the next stage stay after the list
    return [*kept[:end], *(f"      - {path}\n" for path in code), *kept[end:]]


def with_code_deps(yaml_text: str, code: Mapping[str, list[str]], root: Path = REPO_ROOT) -> str:
    """dvc.yaml's text with each stage's workspace-module deps replaced by `code[stage]`."""
    lines = yaml_text.splitlines(keepends=True)
    out: list[str] = []
    stage, index, written = "", 0, set()
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if match := _STAGE.match(line):
            stage = match["name"]
        elif stage in code and _DEPS.match(line):
            end = index
            while end < len(lines) and _IN_LIST.match(lines[end]):
                end += 1
            out += _rewrite_list(lines[index:end], code[stage], root)
            written.add(stage)
            index = end
    missing = sorted(set(code) - written)
    if missing:
        raise LayoutError(
            f"{DVC_YAML}: stages {', '.join(missing)} have no block `    deps:` list to write "
            "their code deps into"
        )
    new_text = "".join(out)
    for parsed in _stages(new_text, root):
        if workspace_deps(parsed.deps, root) != code[parsed.name]:
            raise LayoutError(f"{DVC_YAML}: stage {parsed.name}'s deps did not take the rewrite")
    return new_text


def code_record(path: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """A code dep as dvc.lock records it: DVC 3's md5 (of the bytes as they are) and size."""
    data = (root / path).read_bytes()
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return {"path": path, "hash": "md5", "md5": digest, "size": len(data)}


def with_code_records(lock_text: str, yaml_text: str, root: Path = REPO_ROOT) -> str:
    """dvc.lock's text with each stage's code deps recorded as the files are now."""
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    lock = parse_yaml_for_update(lock_text, DVC_LOCK)
    for stage in _stages(yaml_text, root):
        locked = lock.get("stages", {}).get(stage.name)
        if locked is None:
            raise LayoutError(
                f"{DVC_LOCK}: stage {stage.name} is missing; run it once with `dvc repro`"
            )
        data = [entry for entry in locked.get("deps", []) if not is_code(entry["path"], root)]
        code = [code_record(dep, root) for dep in stage.deps if is_code(dep, root)]
        locked["deps"] = sorted(data + code, key=lambda entry: entry["path"])
    text: str = dumps_yaml(lock)
    return text


def generated_yaml(root: Path = REPO_ROOT) -> str:
    """dvc.yaml with each stage's code deps as its import closure is now."""
    yaml_text = (root / DVC_YAML).read_text(encoding="utf-8")
    return with_code_deps(yaml_text, code_deps(yaml_text, root), root)


def generated_lock(root: Path = REPO_ROOT) -> str:
    """dvc.lock recording the code deps of the generated dvc.yaml (so both are named if stale)."""
    lock_text = (root / DVC_LOCK).read_text(encoding="utf-8")
    return with_code_records(lock_text, generated_yaml(root), root)


#: The files `make generate` writes here (`scripts.generated`), in order.
GENERATED: Final[dict[Path, Callable[[Path], str]]] = {
    Path(DVC_YAML): generated_yaml,
    Path(DVC_LOCK): generated_lock,
}
