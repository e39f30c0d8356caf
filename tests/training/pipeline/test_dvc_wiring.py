"""dvc.yaml tells the truth about the code each stage runs, and dvc.lock about the code.

The code deps are written by `make dvc-deps` (`scripts.dvc_deps`) from each stage's import
closure (`scripts.stage_code`); these tests are its check. Each check is shown to fail on a
broken copy of the real dvc.yaml, dvc.lock or source, so none of them passes vacuously. What
each stage reads and writes is checked by running it: test_stage_io.py.
"""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
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


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what `make dvc-deps` reads and writes: the DVC files and the source, to break."""
    for name in ("pyproject.toml", "params.yaml", dvc_deps.DVC_YAML, dvc_deps.DVC_LOCK):
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    for folder in (*stage_code.code_dirs(), "feature_repo"):
        if (REPO_ROOT / folder).is_dir():
            shutil.copytree(
                REPO_ROOT / folder,
                tmp_path / folder,
                ignore=shutil.ignore_patterns("__pycache__", "data"),
                dirs_exist_ok=True,
            )
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_feast_repo_code_counts_as_the_stage_code(checkout: Path, params: dict[str, Any]) -> None:
    """What the Feast repo's features.py imports is the stage's code too (Feast runs it)."""
    script = checkout / "feature_repo" / "features.py"
    script.write_text(
        script.read_text(encoding="utf-8") + "\nfrom training.core import promotion\n"
    )
    stages = stage_code.load_stages(stage_code.read_yaml("dvc.yaml", checkout), params)
    stage = dvc_stages.named(stages, "feature_store")
    assert "feature_repo/features.py" in stage.deps
    assert stage_code.code_dep_problems(stage, root=checkout) == [
        "stage feature_store: runs training.core.promotion "
        "(training/src/training/core/promotion.py), which its deps lack"
    ]


# ---- generated by `make dvc-deps` ------------------------------------------------------------


def test_committed_dvc_files_are_what_make_dvc_deps_writes() -> None:
    """dvc.yaml's code deps and dvc.lock's records of them equal the generator's output."""
    assert dvc_deps.stale() == []


def test_an_import_closure_change_names_the_stage_the_module_and_the_diff(
    checkout: Path, params: dict[str, Any]
) -> None:
    """A job importing one more module, dvc.yaml not following: stage, module and diff named."""
    _edit(
        checkout / "training/src/training/jobs/features.py",
        "\nfrom training.io import files\n",
        "\nfrom training.core import metrics  # noqa: F401\nfrom training.io import files\n",
    )
    stages = stage_code.load_stages(stage_code.read_yaml("dvc.yaml", checkout), params)
    assert stage_code.code_dep_problems(dvc_stages.named(stages, "features"), checkout) == [
        "stage features: runs training.core.metrics "
        "(training/src/training/core/metrics.py), which its deps lack"
    ]
    problems = dvc_deps.stale(checkout)
    assert [p.split("\n", 1)[0] for p in problems] == [
        "dvc.yaml differs from `make dvc-deps`:",
        "dvc.lock differs from `make dvc-deps`:",
    ]
    assert "+      - training/src/training/core/metrics.py\n" in problems[0]
    assert dvc_deps.generate(checkout) == ["dvc.yaml", "dvc.lock"]
    assert dvc_deps.stale(checkout) == []


def test_a_hand_edited_code_dep_names_the_file_and_the_difference(checkout: Path) -> None:
    """Dropping a generated line from dvc.yaml by hand: the file and the missing line are named."""
    line = "      - training/src/training/io/tree_ensemble.py\n"
    _edit(checkout / "dvc.yaml", line, "")
    (problem,) = dvc_deps.stale(checkout)
    assert problem.startswith("dvc.yaml differs from `make dvc-deps`:\n--- dvc.yaml (committed)")
    assert f"\n+{line}" in problem


def test_a_code_change_without_its_record_names_dvc_lock_and_the_hash(checkout: Path) -> None:
    """Editing a module leaves dvc.lock's md5 and size stale: the file and both lines are named."""
    path = "training/src/training/jobs/split.py"
    before = dvc_deps.code_record(path, checkout)
    _edit(checkout / path, "\n", "\n# one more line\n")
    after = dvc_deps.code_record(path, checkout)
    (problem,) = dvc_deps.stale(checkout)
    assert problem.startswith("dvc.lock differs from `make dvc-deps`:")
    for old, new in ((before["md5"], after["md5"]), (before["size"], after["size"])):
        assert f"\n-      {'md5' if isinstance(old, str) else 'size'}: {old}\n" in problem
        assert f"\n+      {'md5' if isinstance(new, str) else 'size'}: {new}\n" in problem


def test_a_stage_without_a_deps_list_is_refused(checkout: Path) -> None:
    """The generator names the stage it cannot write code deps into, rather than guessing."""
    text = (checkout / "dvc.yaml").read_text(encoding="utf-8")
    code = dvc_deps.code_deps(text, checkout)
    broken = text.replace(
        "  features:\n    cmd: car-train features\n    deps:\n",
        "  features:\n    cmd: car-train features\n    deps: [\n",
        1,
    )
    assert broken != text
    with pytest.raises(dvc_deps.LayoutError, match="stages features have no block"):
        dvc_deps.with_code_deps(broken, code, checkout)


_SYNTHETIC_DVC_YAML = """stages:
  copy:
    cmd: cp data.txt out.txt
    deps:
      - data.txt
      - training/src/training/a.py
      - zz.txt
    params:
      - train
    outs:
      - out.txt
"""


def _dvc(root: Path, *args: str) -> None:
    """Run the environment's DVC in a project (no analytics, no git)."""
    bin_dir = Path(sys.executable).parent
    env = os.environ | {
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    subprocess.run(
        [str(bin_dir / "dvc"), *args], cwd=root, env=env, check=True, capture_output=True
    )


@pytest.mark.slow
def test_refreshed_records_are_what_dvc_repro_writes(tmp_path: Path) -> None:
    """On a tiny real DVC project, the generator's dvc.lock equals `dvc repro`'s byte for byte.

    After one repro, a code dep changes and a new one is declared: the generator's lock (written
    without running) and the one DVC writes when it reruns the stage must be the same text.
    """
    source = tmp_path / "training" / "src" / "training"
    source.mkdir(parents=True)
    (source / "a.py").write_text("A = 1\n", encoding="utf-8")
    (source / "b.py").write_text("B = 2\n", encoding="utf-8")
    (tmp_path / "data.txt").write_text("rows\n", encoding="utf-8")
    (tmp_path / "zz.txt").write_text("more rows\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["training"]\n', encoding="utf-8"
    )
    (tmp_path / "params.yaml").write_text("train:\n  rounds: 3\n  rate: 0.1\n", encoding="utf-8")
    (tmp_path / "dvc.yaml").write_text(_SYNTHETIC_DVC_YAML, encoding="utf-8")
    _dvc(tmp_path, "init", "--no-scm", "-q")
    _dvc(tmp_path, "repro", "-q")

    (source / "a.py").write_text("A = 10\n", encoding="utf-8")
    new_yaml = _SYNTHETIC_DVC_YAML.replace("a.py\n", "a.py\n      - training/src/training/b.py\n")
    (tmp_path / "dvc.yaml").write_text(new_yaml, encoding="utf-8")
    ours = dvc_deps.with_code_records(
        (tmp_path / "dvc.lock").read_text(encoding="utf-8"), new_yaml, tmp_path
    )
    _dvc(tmp_path, "repro", "-q")
    assert ours == (tmp_path / "dvc.lock").read_text(encoding="utf-8")
    assert "training/src/training/b.py" in ours


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
