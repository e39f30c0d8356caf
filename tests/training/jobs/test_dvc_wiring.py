"""dvc.yaml tells the truth about the code each stage runs, and dvc.lock about the code.

The code deps are written by `make generate` (`scripts.dvc_deps`) from each stage's import
closure (`scripts.stage_code`); these tests are its check, with test_dvc_deps.py (the generator
on broken copies of the checkout). Each check is shown to fail on a broken copy of the real
dvc.yaml, dvc.lock or source, so none of them passes vacuously. What each stage reads and
writes is checked by running it: test_stage_io.py.
"""

import copy
from typing import Any

import dvc
import pytest

from scripts import dvc_deps, stage_code

from . import dvc_stages

REPO_ROOT = stage_code.REPO_ROOT


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    """The repository's params.yaml."""
    return stage_code.read_yaml("params.yaml")


@pytest.fixture
def stages(dvc_yaml: dict[str, Any], params: dict[str, Any]) -> list[stage_code.Stage]:
    """The repository's stages with params substituted."""
    return stage_code.load_stages(dvc_yaml, params)


def test_stages_read_as_dvc_reads_them(stages: list[stage_code.Stage]) -> None:
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


def test_every_stage_depends_on_the_code_it_runs(stages: list[stage_code.Stage]) -> None:
    """Each workspace module a stage's command imports is a dep, and no code dep is unused."""
    problems = [p for stage in stages for p in stage_code.code_dep_problems(stage)]
    assert problems == []


def test_a_missing_code_dep_is_reported(dvc_yaml: dict[str, Any], params: dict[str, Any]) -> None:
    """Drop the forest rewrite from export's deps: the check names the stage and module."""
    module = "training/src/training/io/tree_ensemble.py"
    export = dvc_stages.named(
        stage_code.load_stages(dvc_stages.without(dvc_yaml, "export", "deps", module), params),
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
    register = dvc_stages.named(stage_code.load_stages(broken, params), "register")
    assert stage_code.code_dep_problems(register) == [
        "stage register: dep training/src/training/jobs/promote.py is code the stage never imports"
    ]


def test_no_module_a_stage_runs_is_excused(stages: list[stage_code.Stage]) -> None:
    """training/config.py and errors.py, which every job imports, are in every stage's deps."""
    for stage in stages:
        assert "training/src/training/config.py" in stage.deps, stage.name
        assert "training/src/training/errors.py" in stage.deps, stage.name


def test_a_stage_that_is_not_car_train_is_refused(params: dict[str, Any]) -> None:
    """The generator cannot tell the code of another command: it names the stage."""
    raw = {"stages": {"notebook": {"cmd": "python train.py", "deps": ["train.py"]}}}
    (stage,) = stage_code.load_stages(raw, params)
    with pytest.raises(ValueError, match="stage notebook: cannot tell the code of 'python train"):
        stage_code.stage_code(stage)


# ---- dvc.lock --------------------------------------------------------------------------------


def test_lock_is_written_by_dvc_3() -> None:
    """The lock's md5s are DVC 3's (of a file's bytes), the DVC this environment runs."""
    assert dvc.__version__.split(".")[0] == "3"
    lock = stage_code.read_yaml("dvc.lock")
    assert lock["schema"] == "2.0"
    entries = [e for s in lock["stages"].values() for e in s.get("deps", []) + s.get("outs", [])]
    assert entries
    assert {e["hash"] for e in entries} == {"md5"}


def test_committed_lock_matches_the_code(
    stages: list[stage_code.Stage], params: dict[str, Any]
) -> None:
    """dvc.lock records every stage's command, params and code deps as they are in the tree."""
    assert (
        dvc_stages.lock_problems(stages, stage_code.read_yaml("dvc.lock"), params, REPO_ROOT) == []
    )


def test_a_stale_lock_is_reported(stages: list[stage_code.Stage], params: dict[str, Any]) -> None:
    """A lock whose md5 for a code dep differs from the file is named by stage and path."""
    lock = stage_code.read_yaml("dvc.lock")
    path = "training/src/training/jobs/split.py"
    entry = next(e for e in lock["stages"]["split"]["deps"] if e["path"] == path)
    entry["md5"] = "0" * 32
    assert dvc_stages.lock_problems(stages, lock, params, REPO_ROOT) == [
        f"stage split: dvc.lock records md5 {'0' * 32} for {path}, the file's is "
        f"{dvc_deps.code_record(path)['md5']}"
    ]


def test_a_lock_missing_a_new_dep_is_reported(
    stages: list[stage_code.Stage], params: dict[str, Any]
) -> None:
    """A dep dvc.yaml declares but the lock does not record is named (repro was not run)."""
    lock = stage_code.read_yaml("dvc.lock")
    path = "training/src/training/io/tree_ensemble.py"
    lock["stages"]["export"]["deps"] = [
        e for e in lock["stages"]["export"]["deps"] if e["path"] != path
    ]
    assert dvc_stages.lock_problems(stages, lock, params, REPO_ROOT) == [
        f"stage export: dvc.lock does not record dep {path}"
    ]


def test_a_lock_changed_cmd_or_param_is_reported(
    stages: list[stage_code.Stage], params: dict[str, Any]
) -> None:
    """What the generator leaves alone, a command or a param value, is named by stage too."""
    lock = copy.deepcopy(stage_code.read_yaml("dvc.lock"))
    lock["stages"]["tune"]["cmd"] = "car-train train"
    lock["stages"]["tune"]["params"]["params.yaml"]["tune"] = {}
    assert dvc_stages.lock_problems(stages, lock, params, REPO_ROOT) == [
        "stage tune: dvc.lock has cmd 'car-train train'",
        "stage tune: dvc.lock records another value of tune",
    ]
