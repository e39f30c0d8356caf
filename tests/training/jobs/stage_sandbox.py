"""What a stage reads and writes: run it with only its declared deps present.

`sandbox_problems` hides every project file the stage does not declare as a dep, runs the
stage's command and compares the project's files before and after.
"""

import contextlib
import io
import os
import shlex
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scripts.stage_code import Stage, covered

from training.cli import main


def _files(root: Path, skip: Iterable[str]) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime)} of the project's files, bar `skip` and __pycache__."""
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and not covered(relative, skip):
            stat = path.stat()
            found[relative] = (stat.st_size, stat.st_mtime_ns)
    return found


def store_dirs(project: Path, params: Mapping[str, Any]) -> list[str]:
    """Folders of the stores the steps update in place: MLflow's and Feast's registry.

    They are state shared across runs (every run and every `feast apply` adds its id and
    time), like a tracking server: not DVC outputs, so no stage declares them.
    """
    import yaml

    registry = params["registry"]
    dirs = [
        Path(registry["tracking_uri"].removeprefix("sqlite:///")).parent,
        Path(registry["artifact_dir"]),
    ]
    repo = project / params["feature_store"]["repo_path"]
    feast = yaml.safe_load((repo / "feature_store.yaml").read_text(encoding="utf-8"))
    dirs += [(repo / feast[key]["path"]).parent for key in ("registry", "online_store")]
    return [
        os.path.relpath((project / d).resolve(), project.resolve()).replace(os.sep, "/")
        for d in dirs
    ]


def sandbox_problems(project: Path, stage: Stage, stores: list[str]) -> list[str]:
    """Run the stage's command in `project` with every file it does not declare as a dep hidden.

    The command runs through `car-train`'s `main` in this process (what DVC runs, without
    paying every step's imports again), in `project`, with MLFLOW_TRACKING_URI unset. A stage
    that reads an undeclared file fails; a file it creates, changes or deletes outside its
    declared outs is reported. Hidden files are put back afterwards.
    """
    keep = ["params.yaml", "dvc.yaml", *stores]
    stash = project.parent / f"{project.name}-stash"
    hidden = [p for p in _files(project, keep) if not covered(p, stage.deps)]
    for relative in hidden:
        (stash / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).replace(stash / relative)
    try:
        before = _files(project, keep)
        program, *arguments = shlex.split(stage.cmd)
        assert program == "car-train", stage.cmd
        errors = io.StringIO()
        with contextlib.chdir(project), contextlib.redirect_stderr(errors):
            code = main(arguments)
        if code != 0:
            return [
                f"stage {stage.name}: `{stage.cmd}` failed with only its declared deps present "
                f"(reads an undeclared file?):\n{errors.getvalue()[-2000:]}"
            ]
        after = _files(project, keep)
        changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
        return [
            f"stage {stage.name}: wrote {path}, which it does not declare as an output"
            for path in sorted(changed)
            if not covered(path, stage.outs)
        ]
    finally:
        for relative in hidden:
            target = project / relative
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                (stash / relative).replace(target)
        shutil.rmtree(stash, ignore_errors=True)
