"""`car-train outcome`: a finished step's decision as one JSON line, for Airflow's XCom.

Airflow tasks run steps where the data is (on the worker, or in a pod with its own volume), so
the DAGs never read the pipeline's files themselves: this command reads a step's report and
prints what the DAG branches on, with the MLflow run behind it. It writes nothing the pipeline
reads; `--out` also writes the line to a file (a pod's `/airflow/xcom/return.json`).

- `drift --run NAME`: `paths.drift/NAME/summary.json` → `retrain`, its reasons and the action
  (none, refresh or retrain).
- `retrain`: `paths.retrain_report` → the gate's decision and the challenger's MLflow run.
- `refresh`: `paths.refresh_report` (`car-train refresh-level`) → the same.
- `promote`: `paths.promotion` (the pipeline's gate) → the same.
"""

import logging
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec

from training.config import Params
from training.errors import PipelineError
from training.io.mlflow_service import MlflowService
from training.records import Action, PromotionRecord, RefreshRecord, RetrainRecord

log = logging.getLogger(__name__)

Step = Literal["drift", "retrain", "refresh", "promote"]
#: The steps whose outcome this command reads (light to import: `car-train --help` uses it).
STEPS: tuple[Step, ...] = get_args(Step)


class DriftOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The drift verdict of one run."""

    step: Literal["drift"] = "drift"
    run: str
    retrain: bool
    reasons: list[str]
    action: Action


class GateOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A gate's decision: the challenger, its MLflow run, and the champion after it."""

    step: Literal["retrain", "refresh", "promote"]
    promote: bool
    reason: str
    model_name: str
    challenger_version: str
    mlflow_run_id: str
    champion_version_before: str | None
    champion_version_after: str | None


class _VerdictView(msgspec.Struct, frozen=True):
    retrain: bool
    reasons: list[str]
    # Summaries written before the market clock have no action: a rule then meant a retrain.
    action: Action | None = None


class _DriftSummaryView(msgspec.Struct, frozen=True):
    """The part of `summary.json` (`training.jobs.drift.DriftSummary`) read here."""

    run: str
    verdict: _VerdictView


def run(
    params: Params,
    service: MlflowService,
    *,
    step: Step,
    run_name: str | None = None,
    out: Path | None = None,
) -> DriftOutcome | GateOutcome:
    """Print the outcome of `step` as one JSON line (and write it to `out`).

    Args:
        params: The pipeline params (`paths`, `registry`).
        service: The MLflow store the gates registered their challengers in.
        step: Which step's report to read.
        run_name: The drift run (`car-train drift --run`); drift only.
        out: Also write the line to this file.

    Returns:
        The outcome printed.

    Raises:
        PipelineError: The report is missing or corrupt, a drift run is not named, or the
            challenger's version is not in the registry.
    """
    # Imported here: the CLI imports this module to list STEPS, and these pull in pandas.
    from training.io import files
    from training.jobs.drift import SUMMARY_FILE

    outcome: DriftOutcome | GateOutcome
    if step == "drift":
        if not run_name:
            raise PipelineError("outcome drift needs --run NAME (the drift run's folder)")
        summary_path = params.paths.drift / run_name / SUMMARY_FILE
        summary = files.read_record(summary_path, _DriftSummaryView, "car-train drift")
        verdict = summary.verdict
        action = verdict.action or ("retrain" if verdict.retrain else "none")
        outcome = DriftOutcome(
            run=summary.run, retrain=verdict.retrain, reasons=verdict.reasons, action=action
        )
    else:
        outcome = _gate_outcome(params, service, step)
    line = msgspec.json.encode(outcome)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(line)
    log.info("%s outcome: %s", step, _describe(outcome))
    # The last line of the output: Airflow's BashOperator pushes the last line it reads, and it
    # reads stderr (the log) and stdout as one stream.
    print(line.decode(), flush=True)
    return outcome


def _gate_outcome(
    params: Params, service: MlflowService, step: Literal["retrain", "refresh", "promote"]
) -> GateOutcome:
    """The gate report of `retrain`, `refresh` or `promote`, with the challenger's run id."""
    from training.io import files, registry

    name = params.registry.model_name
    record: RetrainRecord | PromotionRecord
    if step == "refresh":
        refresh = files.read_record(
            params.paths.refresh_report, RefreshRecord, "car-train refresh-level"
        )
        version: Any = registry.require_version(service, name, refresh.challenger.version)
        return GateOutcome(
            step=step,
            promote=refresh.promote,
            reason=refresh.reason,
            model_name=name,
            challenger_version=refresh.challenger.version,
            mlflow_run_id=str(version.run_id),
            champion_version_before=refresh.parent_version,
            champion_version_after=refresh.champion_version_after,
        )
    if step == "retrain":
        record = files.read_record(params.paths.retrain_report, RetrainRecord, "car-train retrain")
        challenger = record.challenger.version
    else:
        record = files.read_record(params.paths.promotion, PromotionRecord, "car-train promote")
        challenger = record.challenger_version
    version = registry.require_version(service, name, challenger)
    return GateOutcome(
        step=step,
        promote=record.promote,
        reason=record.reason,
        model_name=name,
        challenger_version=challenger,
        mlflow_run_id=str(version.run_id),
        champion_version_before=record.champion_version_before,
        champion_version_after=record.champion_version_after,
    )


def _describe(outcome: DriftOutcome | GateOutcome) -> str:
    if isinstance(outcome, DriftOutcome):
        return f"action={outcome.action}" + "".join(f"; {r}" for r in outcome.reasons)
    verdict = "promoted" if outcome.promote else "refused"
    return (
        f"version {outcome.challenger_version} (MLflow run {outcome.mlflow_run_id}) {verdict}: "
        f"{outcome.reason}"
    )
