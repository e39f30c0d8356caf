"""The DAG files as the DAG processor sees them, and every step's pod in Kubernetes mode."""

import copy
import itertools
import json
import os
import posixpath
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from car_price import steps
from k8s import render

from ..pod_security import restricted_problems
from ..training.conftest import REPO_ROOT
from .conftest import DAGS, RUNNER

DRIFT, TRAINING, ROLLOUT = "car_price_drift", "car_price_training", "car_price_rollout"


def _load(tmp_path: Path, command: str, **env: str) -> dict[str, Any]:
    """`dag_runner.py COMMAND` in a fresh Airflow home; its JSON result."""
    out = tmp_path / f"{command}.json"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CAR_PRICE"))}
    base.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, str(RUNNER), command, str(out)],
        env={
            **base,
            "AIRFLOW_HOME": str(tmp_path / "home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The DagBag of airflow/dags, loaded as the DAG processor loads it."""
    return _load(tmp_path_factory.mktemp("dagbag"), "dagbag")


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every step's pod with `CAR_PRICE_EXECUTION=kubernetes` and a tracking server set."""
    return _load(
        tmp_path_factory.mktemp("pods"),
        "pods",
        CAR_PRICE_EXECUTION="kubernetes",
        MLFLOW_TRACKING_URI="http://mlflow.car-price:5000",
    )


@pytest.mark.slow
def test_dagbag_loads_every_dag_without_errors_or_cycles(dagbag: dict[str, Any]) -> None:
    """The three DAG files import cleanly, quickly, and form no cycle."""
    print(f"DagBag: {dagbag['parse_s']:.2f} s in all; per file: {dagbag['file_stats']}")
    assert dagbag["import_errors"] == {}
    assert set(dagbag["dags"]) == {DRIFT, TRAINING, ROLLOUT}
    assert all(dag["cycle"] is None for dag in dagbag["dags"].values())
    # Light top-level code: a DAG file parses in well under a second, and the training stack
    # (pandas, MLflow, ...) stays out of the DAG processor.
    assert all(stat["duration_s"] < 1.0 for stat in dagbag["file_stats"]), dagbag["file_stats"]
    assert dagbag["heavy_modules"] == []


@pytest.mark.slow
def test_every_task_has_an_owner_retries_and_a_timeout(dagbag: dict[str, Any]) -> None:
    """No task runs without an owner, a retry policy or an execution timeout."""
    for dag in dagbag["dags"].values():
        for task_id, task in dag["tasks"].items():
            assert task["owner"] == "car-price", task_id
            assert isinstance(task["retries"], int), task_id
            assert (task["timeout_s"] or 0) > 0, task_id
    drift, training = dagbag["dags"][DRIFT]["tasks"], dagbag["dags"][TRAINING]["tasks"]
    # Steps that talk to MLflow or the server retry; the drift analysis does not, nor the level
    # refresh, whose failures are refusals that a retry would only repeat.
    assert all(t["retries"] > 0 for t in (training["retrain"], drift["publish"]))
    assert drift["verify_serving"]["retries"] > 0
    assert drift["drift"]["retries"] == 0
    assert drift["refresh_level"]["retries"] == 0


@pytest.mark.slow
def test_training_dag_runs_dvc_yaml_stages_in_order(dagbag: dict[str, Any]) -> None:
    """Pipeline mode is dvc.yaml's stages, one task each, chained in dvc.yaml's order."""
    stages = list(yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text("utf-8"))["stages"])
    tasks = dagbag["dags"][TRAINING]["tasks"]
    chained = [f"stage_{stage}" for stage in stages]
    assert all(tasks[a]["downstream"] == [b] for a, b in itertools.pairwise(chained))
    assert tasks[chained[-1]]["downstream"] == ["promote_outcome"]
    assert set(tasks["choose_mode"]["downstream"]) == {chained[0], "retrain"}


@pytest.mark.slow
def test_drift_dag_branches_to_a_level_refresh_or_a_retrain(dagbag: dict[str, Any]) -> None:
    """The verdict's action picks the refresh or the retrain; both reach the one gate check."""
    tasks = dagbag["dags"][DRIFT]["tasks"]
    assert set(tasks["retrain_needed"]["downstream"]) == {"refresh_level", "retrain"}
    assert tasks["refresh_level"]["downstream"] == ["refresh_outcome"]
    assert tasks["refresh_outcome"]["downstream"] == ["promoted"]
    assert tasks["retrain"]["downstream"] == ["promoted"]
    assert tasks["promoted"]["downstream"] == ["publish"]


@pytest.mark.slow
def test_drift_dag_is_daily_over_data_intervals(dagbag: dict[str, Any]) -> None:
    """The drift DAG's window comes from data intervals (a backfill reads its own day)."""
    drift = dagbag["dags"][DRIFT]
    assert drift["schedule"] == "CronDataIntervalTimetable"
    assert drift["tasks"]["retrain"]["operator"] == "TriggerDagRunOperator"


@pytest.mark.slow
def test_rollout_dag_watches_every_minute_one_run_at_a_time(dagbag: dict[str, Any]) -> None:
    """`car-train watch` each minute after the Prometheus check; no retries, no overlap."""
    rollout = dagbag["dags"][ROLLOUT]
    assert rollout["schedule"] == "CronTriggerTimetable"
    assert rollout["max_active_runs"] == 1
    tasks = rollout["tasks"]
    assert tasks["prometheus_set"]["downstream"] == ["watch"]
    assert tasks["watch"]["retries"] == 0


@pytest.mark.slow
def test_kubernetes_mode_renders_a_valid_pod_per_step(pods: dict[str, Any]) -> None:
    """Every step becomes a valid, non-root pod of the training image with resources and MLflow."""
    steps = {
        "car_price_drift.drift",
        "car_price_drift.drift_outcome",
        "car_price_drift.publish",
        "car_price_training.retrain",
        "car_price_training.retrain_outcome",
        "car_price_training.stage_train",
        "car_price_rollout.watch",
    }
    assert steps <= set(pods)
    for name, pod in pods.items():
        kubernetes_validate.validate(pod, "1.31.0", strict=True)
        spec = pod["spec"]
        # The step's container; outcome steps also get Airflow's XCom sidecar.
        container = spec["containers"][0]
        assert container["name"] == "base", name
        assert len(spec["containers"]) == (2 if name.endswith("_outcome") else 1), name
        assert container["image"] == "car-price-training:latest", name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}, name
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.car-price:5000", name
        if name.split(".")[1].startswith("stage_"):
            assert container["command"] == ["dvc"], name
        else:
            # The image's entrypoint is car-train: only its arguments are given.
            assert not container.get("command"), name
            assert container["args"][:2] == ["--params", "params.yaml"], name
    drift = pods["car_price_drift.drift"]["spec"]["containers"][0]["args"]
    assert drift[2:] == [
        "drift",
        "--log",
        "/var/log/car-price",
        "--since",
        "2026-11-26T00:00:00+00:00",
        "--until",
        "2026-11-27T00:00:00+00:00",
        "--run",
        "scheduled__2026-11-26T0000000000-try1",
    ]
    outcome = pods["car_price_drift.drift_outcome"]["spec"]["containers"][0]["args"]
    assert outcome[-2:] == ["--out", "/airflow/xcom/return.json"]


# --- Kubernetes mode as the namespace admits it ----------------------------------------------


def pod_security_problems(pods: dict[str, Any]) -> list[str]:
    """Each task pod's breaches of Pod Security "restricted", named by task and control."""
    return [
        f"{task}: {problem}"
        for task, pod in pods.items()
        for p in [pod]
        for problem in restricted_problems(p)
    ]


def mount_problems(pods: dict[str, Any], claims: set[str]) -> list[str]:
    """Each path a step reads that its container does not mount from a rendered claim.

    The paths: params.yaml's `data.raw_dir` and every `paths.*` entry, seen from the image's
    project directory, and the prediction log a step is given (`--log`).
    """
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    project = steps.POD_PROJECT_DIR
    read = {"data.raw_dir": posixpath.normpath(posixpath.join(project, params["data"]["raw_dir"]))}
    read |= {
        f"paths.{key}": posixpath.normpath(posixpath.join(project, value))
        for key, value in params["paths"].items()
    }
    problems = []
    for task, pod in pods.items():
        spec = pod["spec"]
        claim_of = {
            v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in spec["volumes"]
        }
        container = spec["containers"][0]
        args = container.get("args") or []
        wanted = dict(read)
        if "--log" in args:
            wanted["--log"] = args[args.index("--log") + 1]
        for what, path in wanted.items():
            mounts = [
                m
                for m in container.get("volumeMounts") or []
                if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
            ]
            if not mounts:
                problems.append(f"{task}: {what} ({path}) is not mounted")
            elif claim_of[mounts[-1]["name"]] not in claims:
                problems.append(
                    f"{task}: {what} ({path}) mounts claim {claim_of[mounts[-1]['name']]}, "
                    "which k8s/ does not render"
                )
    return problems


def rendered_claims() -> set[str]:
    """The claims the prod overlay creates in the DAGs' namespace (plain `kubectl kustomize`)."""
    objects = render.kustomize(REPO_ROOT / "k8s" / "overlays" / "prod")
    return {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}


@pytest.mark.slow
def test_every_task_pod_passes_pod_security_restricted(pods: dict[str, Any]) -> None:
    """Each pod as KPO builds it, XCom sidecar included, is one "restricted" admits."""
    sidecars = [
        c for pod in pods.values() for c in pod["spec"]["containers"] if c["name"] != "base"
    ]
    assert sidecars
    assert {c["name"] for c in sidecars} == {"airflow-xcom-sidecar"}
    assert pod_security_problems(pods) == []


@pytest.mark.needs("kubectl")
@pytest.mark.slow
def test_every_path_a_step_reads_is_mounted_from_a_rendered_claim(pods: dict[str, Any]) -> None:
    """Raw data, data/ and the prediction log are mounts of claims k8s/ creates, in every pod."""
    assert mount_problems(pods, rendered_claims()) == []


@pytest.mark.slow
def test_every_task_pod_changes_volume_ownership_only_on_a_root_mismatch(
    pods: dict[str, Any],
) -> None:
    """Every step pod sets fsGroupChangePolicy OnRootMismatch (no re-own of the data claim)."""
    policies = {
        task: pod["spec"]["securityContext"].get("fsGroupChangePolicy")
        for task, pod in pods.items()
    }
    assert {task for task, policy in policies.items() if policy != "OnRootMismatch"} == set()


@pytest.mark.slow
def test_a_pod_breaking_restricted_names_the_task_and_the_control(pods: dict[str, Any]) -> None:
    """The XCom sidecar without its securityContext (KPO's default) fails, naming both."""
    broken = copy.deepcopy(pods)
    task = "car_price_drift.drift_outcome"
    (sidecar,) = [c for c in broken[task]["spec"]["containers"] if c["name"] != "base"]
    del sidecar["securityContext"]
    del broken[task]["spec"]["securityContext"]["seccompProfile"]
    problems = pod_security_problems({task: broken[task]})
    where = "containers[airflow-xcom-sidecar]"
    assert (
        f"{task}: Privilege Escalation: {where} does not set allowPrivilegeEscalation: false"
        in problems
    )
    assert f"{task}: Capabilities: {where} does not drop ALL" in problems
    assert f"{task}: Seccomp: {where} has no seccompProfile, nor has the pod" in problems


@pytest.mark.needs("kubectl")
@pytest.mark.slow
def test_a_path_not_mounted_is_named_with_the_task(pods: dict[str, Any]) -> None:
    """Without the raw-data mount, `data.raw_dir` is reported for each task by its path."""
    broken = copy.deepcopy(pods)
    for pod in broken.values():
        container = pod["spec"]["containers"][0]
        container["volumeMounts"] = [
            m for m in container["volumeMounts"] if m["mountPath"] != steps.POD_RAW_DIR
        ]
    problems = mount_problems(broken, rendered_claims())
    assert problems == [f"{task}: data.raw_dir (/shared/data) is not mounted" for task in broken]
