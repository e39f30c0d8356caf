"""dvc.yaml tells the truth about the code each stage runs, and dvc.lock about the code.

Each check is shown to fail on a broken copy of the real dvc.yaml or dvc.lock, so none of them
passes vacuously (`dvc_stages` and `stage_code` say how each works). What each stage reads and
writes is checked by running it: test_stage_io.py.
"""

import copy
from pathlib import Path
from typing import Any

import dvc
import pytest

from . import dvc_stages, stage_code

REPO_ROOT = dvc_stages.REPO_ROOT


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    """The repository's params.yaml."""
    return dvc_stages.read_yaml("params.yaml")


@pytest.fixture
def stages(dvc_yaml: dict[str, Any], params: dict[str, Any]) -> list[dvc_stages.Stage]:
    """The repository's stages with params substituted."""
    return dvc_stages.load_stages(dvc_yaml, params)


def test_stages_read_as_dvc_reads_them(stages: list[dvc_stages.Stage]) -> None:
    """The checks parse dvc.yaml as DVC itself does: same stages, commands, deps and outs."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(REPO_ROOT)) as repo:
        theirs = {
            stage.name: (
                stage.cmd,
                sorted(d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)),
                sorted(o.def_path for o in stage.outs),
            )
            for stage in repo.index.stages
        }
    ours = {s.name: (s.cmd, sorted(s.deps), sorted(s.outs)) for s in stages}
    assert ours == theirs


def test_every_data_path_comes_from_params(dvc_yaml: dict[str, Any]) -> None:
    """No stage writes a data path literally: each is a ${...} of params.yaml."""
    assert dvc_stages.templating_problems(dvc_yaml) == []


def test_a_literal_data_path_is_reported(dvc_yaml: dict[str, Any]) -> None:
    """The templating check names the stage and the literal path."""
    broken = copy.deepcopy(dvc_yaml)
    broken["stages"]["features"]["deps"][0] = "data/interim/listings.parquet"
    assert dvc_stages.templating_problems(broken) == [
        "stage features: deps path 'data/interim/listings.parquet' is written literally; "
        "name it in params.yaml and use ${...}"
    ]


def test_every_stage_depends_on_the_code_it_runs(stages: list[dvc_stages.Stage]) -> None:
    """Each workspace module a stage's command imports is a dep, and no code dep is unused."""
    problems = [p for stage in stages for p in stage_code.code_dep_problems(stage)]
    assert problems == []


def test_a_missing_code_dep_is_reported(dvc_yaml: dict[str, Any], params: dict[str, Any]) -> None:
    """Drop the forest rewrite from export's deps: the check names the stage and module."""
    module = "training/src/training/io/tree_ensemble.py"
    export = dvc_stages.named(
        dvc_stages.load_stages(dvc_stages.without(dvc_yaml, "export", "deps", module), params),
        "export",
    )
    assert stage_code.code_dep_problems(export) == [
        f"stage export: runs training.io.tree_ensemble ({module}), which its deps lack"
    ]


def test_a_code_dep_the_stage_does_not_import_is_reported(
    dvc_yaml: dict[str, Any], params: dict[str, Any]
) -> None:
    """A stale code dep (register listing promote's job) is named too."""
    broken = copy.deepcopy(dvc_yaml)
    broken["stages"]["register"]["deps"].append("training/src/training/jobs/promote.py")
    register = dvc_stages.named(dvc_stages.load_stages(broken, params), "register")
    assert stage_code.code_dep_problems(register) == [
        "stage register: dep training/src/training/jobs/promote.py is code the stage never imports"
    ]


def test_feast_repo_code_counts_as_the_stage_code(
    stages: list[dvc_stages.Stage], tmp_path: Path
) -> None:
    """What the Feast repo's features.py imports is the stage's code too (Feast runs it)."""
    script = tmp_path / "feature_repo" / "features.py"
    script.parent.mkdir()
    script.write_text("from training.core.promotion import decide\n", encoding="utf-8")
    stage = dvc_stages.named(stages, "feature_store")
    assert "feature_repo/features.py" in stage.deps
    assert stage_code.code_dep_problems(stage, root=tmp_path) == [
        "stage feature_store: runs training.core.promotion "
        "(training/src/training/core/promotion.py), which its deps lack"
    ]


# ---- dvc.lock --------------------------------------------------------------------------------


def test_lock_is_written_by_dvc_3() -> None:
    """The lock's md5s are DVC 3's (of a file's bytes), the DVC this environment runs."""
    assert dvc.__version__.split(".")[0] == "3"
    lock = dvc_stages.read_yaml("dvc.lock")
    assert lock["schema"] == "2.0"
    entries = [e for s in lock["stages"].values() for e in s.get("deps", []) + s.get("outs", [])]
    assert entries
    assert {e["hash"] for e in entries} == {"md5"}


def test_committed_lock_matches_the_code(
    stages: list[dvc_stages.Stage], params: dict[str, Any]
) -> None:
    """dvc.lock records every stage's command, params and code deps as they are in the tree."""
    assert (
        dvc_stages.lock_problems(stages, dvc_stages.read_yaml("dvc.lock"), params, REPO_ROOT) == []
    )


def test_a_fresh_lock_passes(stages: list[dvc_stages.Stage], params: dict[str, Any]) -> None:
    """The lock `dvc repro` would write now passes: the broken copies below differ by one entry."""
    assert (
        dvc_stages.lock_problems(
            stages, dvc_stages.fresh_lock(stages, params, REPO_ROOT), params, REPO_ROOT
        )
        == []
    )


def test_a_stale_lock_is_reported(stages: list[dvc_stages.Stage], params: dict[str, Any]) -> None:
    """A lock whose md5 for a code dep differs from the file is named by stage and path."""
    lock = dvc_stages.fresh_lock(stages, params, REPO_ROOT)
    path = "training/src/training/jobs/split.py"
    entry = next(e for e in lock["stages"]["split"]["deps"] if e["path"] == path)
    entry["md5"] = "0" * 32
    assert dvc_stages.lock_problems(stages, lock, params, REPO_ROOT) == [
        f"stage split: dvc.lock records md5 {'0' * 32} for {path}, the file's is "
        f"{dvc_stages.md5_file(REPO_ROOT / path)}"
    ]


def test_a_lock_missing_a_new_dep_is_reported(
    stages: list[dvc_stages.Stage], params: dict[str, Any]
) -> None:
    """A dep dvc.yaml declares but the lock does not record is named (repro was not run)."""
    lock = dvc_stages.fresh_lock(stages, params, REPO_ROOT)
    path = "training/src/training/io/tree_ensemble.py"
    lock["stages"]["export"]["deps"] = [
        e for e in lock["stages"]["export"]["deps"] if e["path"] != path
    ]
    assert dvc_stages.lock_problems(stages, lock, params, REPO_ROOT) == [
        f"stage export: dvc.lock does not record dep {path}"
    ]
