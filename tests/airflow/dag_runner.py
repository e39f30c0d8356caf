"""Run in a subprocess by the Airflow tests: Airflow must be configured before its import.

`python dag_runner.py dagbag OUT` writes the DagBag as JSON to OUT (import errors, parse time,
each task's owner, retries and timeout, cycles); `pods OUT` writes every task's pod as the
Kubernetes API would receive it (run with `CAR_PRICE_EXECUTION=kubernetes`);
`run DAG_ID LOGICAL_DATE [CONF]` runs one DAG run with `dag.test()`. (Airflow logs to stdout.)

`dag.test()` has no scheduler, so nothing would ever run the training run that the drift DAG
triggers and waits for. While a run goes on, a thread here plays that part of the scheduler:
it picks up each queued `car_price_training` run and runs it in another process
(`queued DAG_ID RUN_ID`; one DAG run per process, as the task runner keeps per-process state)
with `dag.test()`'s own loop on that very run: `dag.test()` itself would delete it and create
a new one, which the waiting trigger could miss. Everything else is Airflow's own code on a
real SQLite metadata database.
"""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DAGS = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
DATABASE = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
TRIGGERED = "car_price_training"
#: What the DAG files must not import when parsed: the training stack (the steps import it).
HEAVY = frozenset({"training", "pandas", "mlflow", "lightgbm", "nannyml", "feast", "dvc"})


def _bag() -> Any:
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=DAGS, bundle_path=Path(DAGS), bundle_name="dags-folder")


def dagbag() -> dict[str, Any]:
    """The DagBag of the DAGs folder as plain data."""
    started = time.perf_counter()
    bag = _bag()
    parse_s = time.perf_counter() - started
    heavy = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY and "." not in name)
    dags: dict[str, Any] = {}
    for dag_id, dag in bag.dags.items():
        cycle = None
        try:
            dag.check_cycle()
        except Exception as exc:
            cycle = str(exc)
        dags[dag_id] = {
            "cycle": cycle,
            "schedule": type(dag.timetable).__name__,
            "max_active_runs": dag.max_active_runs,
            "tasks": {
                task.task_id: {
                    "operator": type(task).__name__,
                    "owner": task.owner,
                    "retries": task.retries,
                    "timeout_s": None
                    if task.execution_timeout is None
                    else task.execution_timeout.total_seconds(),
                    "downstream": sorted(task.downstream_task_ids),
                }
                for task in dag.tasks
            },
        }
    stats = [
        {"file": Path(s.file).name, "duration_s": s.duration.total_seconds(), "dags": s.dag_num}
        for s in bag.dagbag_stats
    ]
    return {
        "heavy_modules": heavy,
        "import_errors": {str(k): v for k, v in bag.import_errors.items()},
        "parse_s": parse_s,
        "file_stats": stats,
        "dags": dags,
    }


def pods() -> dict[str, Any]:
    """Each KubernetesPodOperator task's pod, rendered for a sample run, as the API gets it."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import ApiClient

    rendered: dict[str, Any] = {}
    client = ApiClient()
    for dag_id, dag in _bag().dags.items():
        for task in dag.tasks:
            if not isinstance(task, KubernetesPodOperator):
                continue
            context = _sample_context(dag, task)
            task.render_template_fields(context)
            pod = task.build_pod_request_obj(context, dry_run=True)
            rendered[f"{dag_id}.{task.task_id}"] = client.sanitize_for_serialization(pod)
    return rendered


def _sample_context(dag: Any, task: Any) -> dict[str, Any]:
    """The template context of a run of yesterday's interval (only what the DAGs use)."""
    start, end = datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)

    class _TaskInstance:
        try_number = 1
        task_id = task.task_id
        dag_id = dag.dag_id
        map_index = -1
        run_id = "scheduled__2026-11-26T00:00:00+00:00"

    return {
        "dag": dag,
        "task": task,
        "ti": _TaskInstance(),
        "params": {key: dag.params[key] for key in dag.params},
        "run_id": _TaskInstance.run_id,
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": start,
    }


def run(dag_id: str, logical_date: str, conf: dict[str, Any]) -> None:
    """One DAG run with `dag.test()`; triggered training runs are run alongside."""
    moment = datetime.fromisoformat(logical_date)
    dag = _bag().get_dag(dag_id)
    stop = threading.Event()
    player = threading.Thread(target=_play_scheduler, args=(stop,), daemon=True)
    if dag_id != TRIGGERED:
        player.start()
    try:
        dag.test(logical_date=moment, run_after=moment, run_conf=conf or None)
    finally:
        stop.set()
        if player.is_alive():
            player.join(timeout=60)


def _play_scheduler(stop: threading.Event) -> None:
    """Run each queued training run, as the scheduler would (module docstring)."""
    seen: set[str] = set()
    while not stop.is_set():
        with sqlite3.connect(DATABASE, timeout=30) as db:
            queued = db.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = ? AND state = ?",
                (TRIGGERED, "queued"),
            ).fetchall()
        for (run_id,) in queued:
            if run_id in seen:
                continue
            seen.add(run_id)
            print(f"dag_runner: running triggered {TRIGGERED} run {run_id}", flush=True)
            subprocess.run([sys.executable, __file__, "queued", TRIGGERED, run_id], check=False)
        stop.wait(0.5)


def run_queued(dag_id: str, run_id: str) -> None:
    """Run an existing queued DAG run to the end: `dag.test()`'s loop, on this run."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    dag = _bag().get_dag(dag_id)
    session = settings.Session()
    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    run.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    run.state, run.start_date = DagRunState.RUNNING, timezone.utcnow()
    session.commit()
    while run.state == DagRunState.RUNNING:
        session.expire_all()
        schedulable, _ = run.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state, ti.scheduled_dttm = TaskInstanceState.SCHEDULED, timezone.utcnow()
        session.commit()
        scheduled = [
            ti
            for ti in run.get_task_instances(session=session)
            if ti.state == TaskInstanceState.SCHEDULED
        ]
        if not scheduled:
            time.sleep(1)
        for ti in scheduled:
            try:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
            except Exception as exc:
                print(f"dag_runner: task {ti.task_id} failed: {exc!r}", file=sys.stderr)


def main() -> None:
    """The command line (module docstring)."""
    command = sys.argv[1]
    if command in {"dagbag", "pods"}:
        result = dagbag() if command == "dagbag" else pods()
        Path(sys.argv[2]).write_text(json.dumps(result), encoding="utf-8")
    elif command == "queued":
        run_queued(sys.argv[2], sys.argv[3])
    elif command == "run":
        conf = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
        run(sys.argv[2], sys.argv[3], conf)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
