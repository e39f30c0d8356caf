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

`--check` writes nothing and exits 1 naming each file that differs, with the difference
(tests/training/jobs/test_dvc_deps.py does the same).
"""

import argparse
import difflib
import hashlib
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from scripts.stage_code import REPO_ROOT, Stage, is_code, load_stages, stage_code, workspace_deps

COMMAND: Final = "make generate"
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


def generated(root: Path = REPO_ROOT) -> dict[str, str]:
    """{file: the text `make generate` writes} for dvc.yaml and dvc.lock."""
    yaml_text = (root / DVC_YAML).read_text(encoding="utf-8")
    new_yaml = with_code_deps(yaml_text, code_deps(yaml_text, root), root)
    lock_text = (root / DVC_LOCK).read_text(encoding="utf-8")
    return {DVC_YAML: new_yaml, DVC_LOCK: with_code_records(lock_text, new_yaml, root)}


def stale(root: Path = REPO_ROOT) -> list[str]:
    """Each committed file that differs from what `make generate` writes, with the difference."""
    problems = []
    for name, wanted in generated(root).items():
        committed = (root / name).read_text(encoding="utf-8")
        if committed != wanted:
            diff = difflib.unified_diff(
                committed.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{name} (committed)",
                f"{name} (generated)",
                n=1,
            )
            problems.append(f"{name} differs from `{COMMAND}`:\n{''.join(diff)}")
    return problems


def generate(root: Path = REPO_ROOT) -> list[str]:
    """Write dvc.yaml's code deps and dvc.lock's records; the files whose text changed."""
    written = []
    for name, text in generated(root).items():
        if (root / name).read_text(encoding="utf-8") != text:
            (root / name).write_text(text, encoding="utf-8")
            written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the code deps and their records, or with --check name the files that differ."""
    parser = argparse.ArgumentParser(prog="python -m scripts.dvc_deps", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale()
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        written = generate()
        for name in written:
            print(f"wrote {name}")
        if not written:
            print(f"{DVC_YAML} and {DVC_LOCK} already match the code")
    except ValueError as exc:  # LayoutError, or a stage that is not a car-train command
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
