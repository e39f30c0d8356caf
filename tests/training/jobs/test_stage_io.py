"""Each stage, run on synthetic data, reads and writes only the paths its dvc.yaml stage declares.

`dvc_stage_sandbox.sandbox_problems` hides every project file the stage does not declare as a dep,
runs the stage's command and compares the files before and after; two broken copies of the
`features` stage show that a missing dep and a missing out are both reported.
"""

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import stage_code

from ..conftest import merged
from ..raw_markets import synthetic_2020, synthetic_2022, write_raw
from . import dvc_stages, stage_sandbox

REPO_ROOT = stage_code.REPO_ROOT


#: The synthetic run's settings besides the fast training ones (the rest is params.yaml).
_PROJECT = {
    # A validation split large enough to calibrate the price interval (50 rows at least).
    "split": {"val_fraction": 0.3},
    # synthetic_2020(400) runs its mileage past the schema's 2,000,000 km: half is quarantined.
    "ingest": {"max_quarantined_share": 0.6},
}


@pytest.fixture(scope="module")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, fast_training: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A project on synthetic raw files with the repo's dvc.yaml, params.yaml and Feast repo.

    Outputs keep the repository's relative paths; the MLflow store's path is absolute, so no
    other test shares it.
    """
    project = tmp_path_factory.mktemp("wiring") / "project"
    repo = stage_code.read_yaml("params.yaml")["feature_store"]["repo_path"]
    shutil.copytree(
        REPO_ROOT / repo,
        project / repo,
        ignore=shutil.ignore_patterns("__pycache__", "data"),
    )
    shutil.copy2(REPO_ROOT / "dvc.yaml", project / "dvc.yaml")
    raw = stage_code.read_yaml("params.yaml")
    raw["data"]["raw_dir"] = "raw"
    store = Path(raw["registry"]["tracking_uri"].removeprefix("sqlite:///"))
    raw["registry"]["tracking_uri"] = f"sqlite:///{project / store}"
    raw["registry"]["artifact_dir"] = str(project / raw["registry"]["artifact_dir"])
    merged(raw, **fast_training, **_PROJECT)
    (project / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    write_raw(project / "raw", synthetic_2020(400), synthetic_2022(20))
    return {
        "project": project,
        "params": raw,
        "stages": stage_code.load_stages(stage_code.read_yaml("dvc.yaml"), raw),
        "stores": stage_sandbox.store_dirs(project, raw),
    }


@pytest.mark.slow
def test_each_stage_reads_and_writes_only_what_it_declares(sandbox: dict[str, Any]) -> None:
    """Every stage, in order, runs with only its declared deps present and writes only its outs."""
    problems = []
    for stage in sandbox["stages"]:
        problems += stage_sandbox.sandbox_problems(sandbox["project"], stage, sandbox["stores"])
        if problems:
            break
    assert problems == []


@pytest.mark.slow
def test_an_undeclared_input_is_reported(sandbox: dict[str, Any], dvc_yaml: dict[str, Any]) -> None:
    """Without its listings dep, `features` fails in the sandbox; the report names both."""
    _prepare(sandbox, "features")
    broken_yaml = dvc_stages.without(dvc_yaml, "features", "deps", "${paths.listings}")
    broken = dvc_stages.named(stage_code.load_stages(broken_yaml, sandbox["params"]), "features")
    (problem,) = stage_sandbox.sandbox_problems(sandbox["project"], broken, sandbox["stores"])
    assert problem.startswith("stage features: `car-train features` failed with only its")
    assert "listings.parquet: listings not found" in problem


@pytest.mark.slow
def test_an_undeclared_output_is_reported(
    sandbox: dict[str, Any], dvc_yaml: dict[str, Any]
) -> None:
    """Without its labels out, the report names `features` and the file it wrote."""
    _prepare(sandbox, "features")
    broken_yaml = dvc_stages.without(dvc_yaml, "features", "outs", "${paths.labels}")
    broken = dvc_stages.named(stage_code.load_stages(broken_yaml, sandbox["params"]), "features")
    labels = sandbox["params"]["paths"]["labels"]
    assert stage_sandbox.sandbox_problems(sandbox["project"], broken, sandbox["stores"]) == [
        f"stage features: wrote {labels}, which it does not declare as an output"
    ]


def _prepare(sandbox: dict[str, Any], upto: str) -> None:
    """Run the stages before `upto` if their outputs are not there yet."""
    for stage in sandbox["stages"]:
        if stage.name == upto:
            return
        if not all((sandbox["project"] / out).exists() for out in stage.outs):
            assert (
                stage_sandbox.sandbox_problems(sandbox["project"], stage, sandbox["stores"]) == []
            )
