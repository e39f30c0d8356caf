"""Real DAG runs (`dag.test()`, SQLite metadata, the real CLI) on the synthetic project.

Order matters and is kept by the fixtures: the clean day, then a retrain the gate promotes,
published to a running `car-serve` (with the market index the 2022 price shock is a level, so
the challenger is far better on 2022 and, at 2020's level, not worse on 2020) and verified
through a real Prometheus scraping it, then a retrain stopped after one boosting round, which
the gate refuses as not better on the new market.
"""

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared_schema.serving_folder import resolve
from training.config import load_params
from training.io import registry
from training.io.mlflow_service import MlflowService

from ..integration.conftest import ServerProcess, serve
from ..integration.prometheus import Prometheus, running
from .conftest import CLEAN_DAY, DRIFTED_DAYS, Project

pytestmark = [
    pytest.mark.needs("airflow", "car-serve", "car-train", "dvc", "prometheus"),
    pytest.mark.integration,
]

DRIFT, TRAINING, ROLLOUT = "car_price_drift", "car_price_training", "car_price_rollout"
RETRAIN_PATH = ("retrain", "promoted", "publish", "verify_serving")
#: The server's scrape job, as `verify_serving` is told it (prometheus_job).
JOB = "car-price-test"


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


@pytest.fixture(scope="module")
def prometheus(project: Project, server: ServerProcess) -> Iterator[Prometheus]:
    """A real Prometheus scraping the server every second as job JOB."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": JOB, "static_configs": [{"targets": [server.url.removeprefix("http://")]}]}
        ],
    }
    workdir = project.root / "prometheus"
    workdir.mkdir()
    with running(config, workdir) as started:
        yield started


def _run(
    project: Project,
    server: ServerProcess,
    name: str,
    day: int,
    params: Path,
    prometheus: Prometheus | None = None,
) -> dict[str, Any]:
    """The drift DAG on drifted day `day`; the states and XComs of it and its training run.

    With `prometheus`, `verify_serving` asks it for every target's version, not `/ready`.
    """
    settings = _settings(project, server, params)
    if prometheus is not None:
        settings |= {"prometheus_url": prometheus.url, "prometheus_job": JOB}
    done = project.run_dag(DRIFT, DRIFTED_DAYS[day] + timedelta(days=1), name, **settings)
    return {
        "returncode": done.returncode,
        "states": project.task_states(DRIFT),
        "run": project.run_state(DRIFT),
        "training_states": project.task_states(TRAINING),
        "training_run": project.run_state(TRAINING),
        "retrain_tries": project.tries(TRAINING, "retrain"),
        "outcome": project.xcom(DRIFT, "drift_outcome"),
        "gate": project.xcom(TRAINING, "gate_outcome"),
        "mlflow_run_id": project.xcom(TRAINING, "gate_outcome", "mlflow_run_id"),
        "served": _served(server),
        "manifest": json.loads(
            (resolve(project.root / "served_model").directory / "manifest.json").read_text()
        ),
        "log": project.log_text(name),
    }


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


@pytest.mark.slow
def test_clean_window_skips_the_retrain(clean: dict[str, Any], project: Project) -> None:
    """No rule triggers on the clean day: the retrain and everything after it are skipped."""
    assert clean["run"] == "success", clean["log"][-3000:]
    states = clean["states"]
    assert states["drift"] == states["drift_outcome"] == states["retrain_needed"] == "success"
    assert all(states[task] == "skipped" for task in RETRAIN_PATH), states
    assert clean["outcome"]["retrain"] is False
    assert "no change (no rule triggered); skipping the rest" in clean["log"]
    summary_dir = load_params(project.root / "params.yaml").paths.drift / clean["outcome"]["run"]
    summary = json.loads((summary_dir / "summary.json").read_text("utf-8"))
    # The window is the run's data interval: the clean day only, not the drifted one after it.
    # Every day has as many records (the test split's size); the three drifted ones are out.
    assert summary["window"]["outside_window"] == 3 * summary["window"]["records"] > 300


@pytest.fixture(scope="module")
def promoted(
    project: Project, server: ServerProcess, prometheus: Prometheus, clean: dict[str, Any]
) -> dict[str, Any]:
    """A drifted day at the repository's gate: the retrain is promoted, published, verified."""
    return _run(project, server, "promoted", 0, project.root / "params.yaml", prometheus)


@pytest.fixture(scope="module")
def refused(project: Project, server: ServerProcess, promoted: dict[str, Any]) -> dict[str, Any]:
    """After `promoted`, another drifted day whose retrain stops after one boosting round."""
    stunted = project.params_file("stunted", train={"num_boost_round": 1})
    return _run(project, server, "refused", 1, stunted)


#: The drift DAG's level-refresh branch, skipped when the verdict asks for a retrain.
REFRESH_PATH = ("refresh_level", "refresh_outcome")


@pytest.mark.slow
def test_drifted_window_retrains_and_the_gate_refuses_a_challenger_no_better(
    refused: dict[str, Any],
) -> None:
    """A one-round challenger: refused as not better, nothing published, version 2 served."""
    assert refused["run"] == "success", refused["log"][-3000:]
    assert refused["outcome"]["retrain"] is True
    assert refused["outcome"]["action"] == "retrain"
    assert any("fields drift" in reason for reason in refused["outcome"]["reasons"])
    states = refused["states"]
    assert states["retrain"] == states["promoted"] == "success"
    assert states["publish"] == states["verify_serving"] == "skipped"
    assert all(states[task] == "skipped" for task in REFRESH_PATH), states
    assert refused["training_run"] == "success"
    training = refused["training_states"]
    assert training["retrain"] == training["retrain_outcome"] == training["gate_outcome"]
    assert training["gate_outcome"] == "success"
    assert all(training[t] == "skipped" for t in training if t.startswith("stage_")), training
    gate = refused["gate"]
    assert gate["promote"] is False
    assert gate["reason"].startswith("not better on the new market")
    assert (gate["challenger_version"], gate["champion_version_after"]) == ("3", "2")
    assert refused["mlflow_run_id"] == gate["mlflow_run_id"]
    assert f"gate refused version 3: {gate['reason']}; nothing is published" in refused["log"]
    assert refused["served"] == refused["manifest"]["model_version"] == "2"


@pytest.mark.slow
def test_drifted_window_retrains_promotes_publishes_and_the_server_serves_it(
    promoted: dict[str, Any], project: Project
) -> None:
    """Drift → retrain → gate promotes → bundle published → the running server answers it."""
    assert promoted["run"] == "success", promoted["log"][-3000:]
    states = promoted["states"]
    assert {states.pop(task) for task in REFRESH_PATH} == {"skipped"}, promoted["states"]
    assert set(states.values()) == {"success"}, promoted["states"]
    gate = promoted["gate"]
    assert gate["promote"] is True, gate["reason"]
    assert (gate["challenger_version"], gate["champion_version_after"]) == ("2", "2")
    assert promoted["served"] == promoted["manifest"]["model_version"] == "2"
    # The XCom's run id is the MLflow run of the registered version, and it is in the logs.
    params = load_params(project.root / "params.yaml")
    service = MlflowService.from_params(params.registry)
    version = registry.require_version(service, params.registry.model_name, "2")
    assert promoted["mlflow_run_id"] == version.run_id
    assert f"gate promoted version 2 (MLflow run {version.run_id})" in promoted["log"]
    # Verified through Prometheus: `count by (model_version)` over the job's targets up.
    assert f"every target of job {JOB} serves model version 2" in promoted["log"]


@pytest.fixture(scope="module")
def empty(project: Project, server: ServerProcess, refused: dict[str, Any]) -> dict[str, Any]:
    """The drift DAG on a day the server logged nothing."""
    settings = _settings(project, server, project.root / "params.yaml")
    project.run_dag(DRIFT, CLEAN_DAY - timedelta(days=2), "empty", **settings)
    return {
        "states": project.task_states(DRIFT),
        "run": project.run_state(DRIFT),
        "log": project.log_text("empty"),
    }


@pytest.mark.slow
def test_an_empty_window_fails_the_drift_naming_the_cause(empty: dict[str, Any]) -> None:
    """No records in the data interval: `drift` fails with the CLI's message, nothing after runs."""
    assert empty["run"] == "failed"
    assert empty["states"]["drift"] == "failed"
    assert all(
        empty["states"][task] == "upstream_failed" for task in ("drift_outcome", *RETRAIN_PATH)
    ), empty["states"]
    assert "car-train drift: error: " in empty["log"]
    assert "no records in the window" in empty["log"]


@pytest.fixture(scope="module")
def failed_training(
    project: Project, server: ServerProcess, empty: dict[str, Any]
) -> dict[str, Any]:
    """A drifted day whose retrain fails (too few new rows for the gate's holdout)."""
    broken = project.params_file("broken", retrain={"min_holdout_rows": 100_000})
    return _run(project, server, "failed_training", 2, broken)


@pytest.mark.slow
def test_a_failed_training_run_fails_the_dag_and_publishes_nothing(
    failed_training: dict[str, Any],
) -> None:
    """The retrain fails: the training run and the trigger fail; nothing is published."""
    assert failed_training["run"] == "failed"
    assert failed_training["training_run"] == "failed"
    assert failed_training["training_states"]["retrain"] == "failed"
    # Retried with backoff first (CAR_PRICE_RETRIES, default 2), then failed.
    assert failed_training["retrain_tries"] == 3
    states = failed_training["states"]
    assert states["retrain"] == "failed"
    assert all(states[task] == "upstream_failed" for task in RETRAIN_PATH[1:]), states
    assert "the gate needs retrain.min_holdout_rows 100000" in failed_training["log"]
    # The champion of the previous run is still what is published and served.
    assert failed_training["served"] == failed_training["manifest"]["model_version"] == "2"


@pytest.fixture(scope="module")
def watched(
    project: Project,
    server: ServerProcess,
    prometheus: Prometheus,
    failed_training: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """The rollout DAG, once without a Prometheus URL and once with the real one."""
    settings = _settings(project, server, project.root / "params.yaml")
    runs = {}
    for minute, (name, url) in enumerate((("rollout_unset", ""), ("rollout", prometheus.url))):
        logical = datetime(2026, 12, 7, 1, minute, tzinfo=UTC)
        done = project.run_dag(ROLLOUT, logical, name, **settings, prometheus_url=url)
        runs[name] = {
            "returncode": done.returncode,
            "run": project.run_state(ROLLOUT),
            "states": project.task_states(ROLLOUT),
            "log": project.log_text(name),
        }
    return runs


@pytest.mark.slow
def test_the_rollout_dag_watches_through_prometheus(watched: dict[str, dict[str, Any]]) -> None:
    """Unset Prometheus: fails naming the setting. Set: watch judges the fresh promotion, no breach.

    The champion published by the promoted run minutes ago is on trial against the one before;
    the previous version answers nothing any more, so only the error ratio can judge it: none.
    """
    unset = watched["rollout_unset"]
    assert unset["run"] == "failed"
    assert unset["states"] == {"prometheus_set": "failed", "watch": "upstream_failed"}
    assert "set CAR_PRICE_PROMETHEUS_URL" in unset["log"]
    judged = watched["rollout"]
    assert judged["run"] == "success", judged["log"][-3000:]
    found = re.findall(r'(\{"figures".*\})', judged["log"])
    assert found, judged["log"][-3000:]
    verdict = json.loads(found[-1])
    assert verdict["action"] == "none"
    assert (verdict["figures"]["candidate"], verdict["figures"]["baseline"]) == ("2", "1")
    assert verdict["reasons"] == []
