"""Real DAG runs (`dag.test()`, SQLite metadata, the real CLI) on the synthetic project.

Order matters and is kept by the fixtures: the clean day, then a retrain the gate refuses
(champion version 1 stays), then one it promotes, published to a running `car-serve`.
"""

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from training.config import load_params

from ..integration.conftest import ServerProcess, serve
from .conftest import CLEAN_DAY, Project

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # The project fixture runs the pipeline in this process: Feast's and MLflow's warnings.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
]

DRIFT, TRAINING = "car_price_drift", "car_price_training"
RETRAIN_PATH = ("retrain", "promoted", "publish", "verify_serving")


def _served(server: ServerProcess) -> str:
    import httpx

    return str(httpx.get(f"{server.url}/ready", timeout=5).json()["model_version"])


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[ServerProcess]:
    """A real car-serve on its own copy of the champion bundle, reloading every 0.2 s."""
    import shutil

    model_dir = project.root / "served_model"
    shutil.copytree(load_params(project.root / "params.yaml").paths.serving_bundle, model_dir)
    with serve(model_dir, project.root / "server.log", RELOAD_POLL_S="0.2") as running:
        yield running


def _settings(project: Project, server: ServerProcess, params: Path) -> dict[str, str]:
    return {
        "params_file": str(params),
        "serving_url": server.url,
        "model_dir": str(project.root / "served_model"),
        "verify_timeout_s": "60",
    }


@pytest.fixture(scope="module")
def clean(project: Project, server: ServerProcess) -> dict[str, Any]:
    """The drift DAG on the clean day (the champion's own test cars)."""
    settings = _settings(project, server, project.root / "params.yaml")
    # The day's interval ends at the next midnight: the logical date of a daily run.
    done = project.run_dag(DRIFT, CLEAN_DAY + timedelta(days=1), "clean", **settings)
    return {
        "returncode": done.returncode,
        "states": project.task_states(DRIFT),
        "run": project.run_state(DRIFT),
        "outcome": project.xcom(DRIFT, "drift_outcome"),
        "log": project.log_text("clean"),
    }


def test_clean_window_skips_the_retrain(clean: dict[str, Any], project: Project) -> None:
    """No rule triggers on the clean day: the retrain and everything after it are skipped."""
    assert clean["run"] == "success", clean["log"][-3000:]
    states = clean["states"]
    assert states["drift"] == states["drift_outcome"] == states["retrain_needed"] == "success"
    assert all(states[task] == "skipped" for task in RETRAIN_PATH), states
    assert clean["outcome"]["retrain"] is False
    assert "no retrain (no rule triggered); skipping the rest" in clean["log"]
    summary_dir = load_params(project.root / "params.yaml").paths.drift / clean["outcome"]["run"]
    summary = json.loads((summary_dir / "summary.json").read_text("utf-8"))
    # The window is the run's data interval: the clean day only, not the drifted one after it.
    # Both days have the same number of records (the test split's size).
    assert summary["window"]["records"] == summary["window"]["outside_window"] > 100
