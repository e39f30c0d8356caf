"""How a pipeline step becomes a task: `car-train` or `dvc repro`, here or in a pod.

Every step is the one CLI (`car-train <step>`) or `dvc repro --single-item <stage>`, so DVC
and the CLI stay the source of truth and a DAG adds only order, retries and timeouts. With
`CAR_PRICE_EXECUTION=local` (the default) a step is a subprocess on the Airflow worker in the
project directory; with `kubernetes` it is a pod of the training image (training/Dockerfile),
its data on a persistent volume claim. A step that reports a decision prints it as one JSON
line (`car-train outcome`), which becomes the task's XCom either way.
"""

import json
import shlex
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from airflow.sdk import BaseOperator

from car_price.settings import Settings

OWNER: Final = "car-price"
#: A step with no network in it (ingest, drift): a failure is the input's, so no retry.
QUICK: Final = timedelta(minutes=30)
#: Training steps (tune, train, retrain) on the whole data set.
LONG: Final = timedelta(hours=3)
#: Inside a pod: the image's project directory, where the data claim and the log are mounted.
POD_PROJECT_DIR: Final = "/app"
POD_DATA_DIR: Final = f"{POD_PROJECT_DIR}/data"
POD_LOG_DIR: Final = "/var/log/car-price"
#: params.yaml's `data.raw_dir` (../shared/data) seen from POD_PROJECT_DIR, as in
#: training/Dockerfile; tests/airflow resolves every path a step reads against the mounts.
POD_RAW_DIR: Final = "/shared/data"
#: The training image's `app` user (training/Dockerfile).
POD_UID: Final = 10001
#: Where KubernetesPodOperator's sidecar reads a pod's XCom.
POD_XCOM_FILE: Final = "/airflow/xcom/return.json"


def default_args(settings: Settings) -> dict[str, Any]:
    """Every task's owner, timeout and retry policy: none by default (see `retrying`)."""
    return {
        "owner": OWNER,
        "retries": 0,
        "execution_timeout": QUICK,
        "retry_delay": timedelta(seconds=settings.retry_delay_s),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(hours=1),
    }


def retrying(settings: Settings) -> dict[str, Any]:
    """Task arguments of a step that talks to MLflow, the registry or a server."""
    return {"retries": settings.retries}


def step(
    task_id: str,
    argv: Sequence[str],
    settings: Settings,
    *,
    tool: str = "car-train",
    xcom: bool = False,
    **task_args: Any,
) -> BaseOperator:
    """A task running one step: `car-train --params <params file> ARGV` or `dvc ARGV`.

    Args:
        task_id: The task's id.
        argv: The step's arguments (Jinja templates allowed: `{{ params.log_dir }}`).
        settings: The deployment's settings (execution mode, image, resources).
        tool: `car-train` or `dvc`.
        xcom: The step prints one JSON line (`car-train outcome`): push it as the XCom.
        **task_args: Further operator arguments (retries, execution_timeout, ...).
    """
    words = ["--params", "{{ params.params_file }}", *argv] if tool == "car-train" else list(argv)
    if settings.execution == "kubernetes":
        return _pod(task_id, tool, words, settings, xcom=xcom, **task_args)
    from airflow.providers.standard.operators.bash import BashOperator

    executable = settings.car_train if tool == "car-train" else settings.dvc
    env = {"MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    if xcom:
        # The last line of the output is the XCom: the outcome's JSON, as a dict.
        task_args["output_processor"] = json.loads
    return BashOperator(
        task_id=task_id,
        bash_command=shlex.join([executable, *words]),
        cwd=settings.project_dir,
        # The worker's environment (PATH, HOME) plus the tracking URI when one is set.
        env={k: v for k, v in env.items() if v},
        append_env=True,
        do_xcom_push=xcom,
        **task_args,
    )


def _pod(
    task_id: str,
    tool: str,
    words: list[str],
    settings: Settings,
    *,
    xcom: bool,
    **task_args: Any,
) -> BaseOperator:
    """The step as a pod of the training image (entrypoint `car-train`, non-root)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    if xcom:
        words = [*words, "--out", POD_XCOM_FILE]
    resources = {"cpu": settings.cpu, "memory": settings.memory}
    env = {"MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"car-price-{task_id.replace('_', '-')}",
        namespace=settings.namespace,
        image=settings.image,
        # The image's entrypoint is car-train; DVC stages name their own command.
        cmds=None if tool == "car-train" else [tool],
        arguments=words,
        env_vars={k: v for k, v in env.items() if v},
        container_resources=k8s.V1ResourceRequirements(requests=resources, limits=resources),
        volumes=[
            k8s.V1Volume(
                name="data",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=settings.data_claim
                ),
            ),
            k8s.V1Volume(
                name="prediction-log",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=settings.log_claim, read_only=True
                ),
            ),
            # The raw auto.ru files `ingest` reads (never written by a step).
            k8s.V1Volume(
                name="raw-data",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=settings.raw_claim, read_only=True
                ),
            ),
        ],
        volume_mounts=[
            k8s.V1VolumeMount(name="data", mount_path=POD_DATA_DIR),
            k8s.V1VolumeMount(name="prediction-log", mount_path=POD_LOG_DIR, read_only=True),
            k8s.V1VolumeMount(name="raw-data", mount_path=POD_RAW_DIR, read_only=True),
        ],
        # The namespace enforces Pod Security "restricted" (k8s/base/namespace.yaml): non-root,
        # seccomp RuntimeDefault for every container (the XCom sidecar inherits both), no
        # privilege escalation, no capabilities.
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=POD_UID,
            run_as_group=POD_UID,
            fs_group=POD_UID,
            # As the Deployment: without it the kubelet re-owns the whole data claim (MLflow,
            # DVC outputs) recursively at every step's start wherever the driver applies fsGroup.
            fs_group_change_policy="OnRootMismatch",
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=_restricted_container(),
        # KPO's sidecar (alpine, `sleep` until Airflow reads the XCom) gets no securityContext of
        # its own unless given one; alpine's user is root, so it runs as the pod's POD_UID.
        xcom_sidecar_container_security_context=_restricted_container(read_only_root=True),
        labels={"app": "car-price-training", "step": task_id.replace("_", "-")},
        do_xcom_push=xcom,
        get_logs=True,
        on_finish_action="delete_pod",
        **task_args,
    )


def _restricted_container(*, read_only_root: bool = False) -> Any:
    """A container securityContext the "restricted" profile admits (no escalation, no caps)."""
    from kubernetes.client import models as k8s

    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        run_as_non_root=True,
        # The step writes to its root filesystem (DVC's state under /app/.dvc); the sidecar
        # writes nothing.
        read_only_root_filesystem=read_only_root,
    )


def log_dir_default(settings: Settings) -> str:
    """The prediction log as the steps see it: the worker's folder, or the pod's mount."""
    return POD_LOG_DIR if settings.execution == "kubernetes" else settings.prediction_log_dir
