"""`car-train`: the one CLI of the training package. DVC stages, Airflow and tests call it.

A job whose `run` takes a `service` is handed the MLflow service of params.yaml's `registry`
section (`training.io.mlflow_service.MlflowService`); the others never touch MLflow.
"""

import argparse
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from shared_schema.bundle import InvalidBundleError, MissingInputError
from training.config import load_params
from training.errors import PipelineError
from training.io.mlflow_service import TELEMETRY_OFF, MlflowService

# Subcommand → (job module, help). Each job module has `run(params[, service], **options)`.
# Jobs are imported only when their command runs: `car-train --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("training.jobs.ingest", "Validate both raw files into listings + quarantine."),
    "features": ("training.jobs.features", "Build the feature and label tables."),
    "feature-store": ("training.jobs.feature_store", "feast apply; check the offline join."),
    "split": ("training.jobs.split", "Train/val/test frames of the 2020 listings via Feast."),
    "tune": ("training.jobs.tune", "Optuna search; best parameters for `train`."),
    "train": ("training.jobs.train", "LightGBM on log(price), tracked in MLflow."),
    "evaluate": ("training.jobs.evaluate", "Test-split metrics, tables and plots."),
    "export": ("training.jobs.export", "One ONNX graph + manifest, parity-checked."),
    "register": ("training.jobs.register", "Register the exported bundle as `challenger`."),
    "promote": ("training.jobs.promote", "Move `champion` to the challenger if not worse."),
    "fetch-model": (
        "training.jobs.fetch_model",
        "Publish the bundle of an alias into the serving folder.",
    ),
    "stage": (
        "training.jobs.stage",
        "Stage the bundle of an alias as the serving folder's challenger.",
    ),
    "promote-live": (
        "training.jobs.promote_live",
        "Promote the challenger on a drift run's labelled shadow rows (live evidence).",
    ),
    "watch": (
        "training.jobs.watch",
        "Judge the rollout's candidate on Prometheus figures; withdraw or roll back on a breach.",
    ),
    "rollback": ("training.jobs.rollback", "Serve `previous` again; move `champion` back to it."),
    "retrain": ("training.jobs.retrain", "Retrain on 2020 + new market rows; gate on the newest."),
    "refresh-level": (
        "training.jobs.refresh_level",
        "The champion's forest at the newest window's market level; gate, publish.",
    ),
    "reference-cv": ("training.jobs.reference_cv", "5-fold CV under the data README's protocol."),
    "drift": ("training.jobs.drift", "Drift and error of a window; refresh, retrain or nothing."),
    "replay": ("training.jobs.replay", "Post listings to a running server, one car each."),
    "outcome": ("training.jobs.outcome", "A drift or gate decision as one JSON line (XCom)."),
}


def main(argv: list[str] | None = None) -> int:
    """Run one pipeline step.

    Args:
        argv: Arguments without the program name; `sys.argv[1:]` when None.

    Returns:
        The exit code: 0 on success, 1 when the step failed with a clear error, 2 for usage.
    """
    parser = argparse.ArgumentParser(prog="car-train", description=__doc__)
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        _extra_arguments(name)(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The process's own settings, before a job imports MLflow (which reads them then).
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    try:
        params = load_params(args.params)
        module = importlib.import_module(COMMANDS[args.command][0])
        runner: Callable[..., object] = module.run
        extra = {k: v for k, v in vars(args).items() if k not in {"params", "verbose", "command"}}
        if "service" in inspect.signature(runner).parameters:
            extra["service"] = MlflowService.from_params(params.registry)
        runner(params, **extra)
    # A bundle `read_verified` refuses, and rows that cannot feed a graph, are refused by the
    # bundle library itself: its message, the server's for the same bundle, is the error.
    except (PipelineError, InvalidBundleError, MissingInputError) as exc:
        print(f"car-train {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _extra_arguments(name: str) -> Callable[[argparse.ArgumentParser], None]:
    """Per-command options, passed to the job's `run` as keyword arguments."""
    extras: dict[str, Callable[[argparse.ArgumentParser], None]] = {
        "fetch-model": _fetch_model_arguments,
        "stage": _stage_arguments,
        "rollback": _rollback_arguments,
        "promote-live": _promote_live_arguments,
        "watch": _watch_arguments,
        "refresh-level": _refresh_level_arguments,
        "drift": _drift_arguments,
        "replay": _replay_arguments,
        "outcome": _outcome_arguments,
    }
    return extras.get(name, lambda _parser: None)


def _fetch_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alias", default="champion", help="registry alias (default: %(default)s)")
    parser.add_argument(
        "--out", help="serving folder to publish into (absent or empty: paths.serving_bundle)"
    )


def _stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--alias", default="challenger", help="registry alias (default: %(default)s)"
    )
    parser.add_argument(
        "--out", help="serving folder to stage into (absent or empty: paths.serving_bundle)"
    )


def _promote_live_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", dest="run_name", required=True, help="the drift run whose shadow rows to judge"
    )
    parser.add_argument(
        "--out", help="serving folder of the trial (absent or empty: paths.serving_bundle)"
    )


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument(
        "--out", help="serving folder to watch (absent or empty: paths.serving_bundle)"
    )
    parser.add_argument(
        "--drift-run", help="a drift run whose labelled shadow rows give both realized MAPEs"
    )


def _rollback_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", required=True, help="why: logged and tagged on the version")
    parser.add_argument(
        "--out", help="serving folder to roll back (absent or empty: paths.serving_bundle)"
    )


def _refresh_level_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stage",
        action="store_true",
        help="stage a challenger the offline gate passes (promote-live decides), not publish it",
    )


def _drift_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--log", dest="log_dir", type=Path, help="the server's prediction log directory"
    )
    source.add_argument("--replay", type=Path, help="a replay parquet file of cars")
    for option, edge in (("--since", "start (inclusive)"), ("--until", "end (exclusive)")):
        parser.add_argument(
            option, type=_utc_time, help=f"window {edge}, ISO 8601; UTC when no offset is given"
        )
    parser.add_argument(
        "--labels", type=Path, help="prices: parquet or CSV, request_id or listing_id, price"
    )
    parser.add_argument(
        "--run", dest="run_name", help="output folder under paths.drift (default: UTC time)"
    )
    parser.add_argument(
        "--closed-only", action="store_true", help="skip .open log segments (being written)"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="reference rows: parquet of Car fields + price (default: the test split)",
    )


def _outcome_arguments(parser: argparse.ArgumentParser) -> None:
    from training.jobs.outcome import STEPS

    parser.add_argument("step", choices=STEPS, help="whose report to read")
    parser.add_argument("--run", dest="run_name", help="the drift run (drift only)")
    parser.add_argument("--out", type=Path, help="also write the JSON line to this file")


def _utc_time(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the server's base URL")
    parser.add_argument("--cars", required=True, help="parquet of listing_id + Car fields")
    parser.add_argument("--source", help="only listings of this source")
    parser.add_argument("--limit", type=int, help="only the first N listings")
    parser.add_argument("--threads", type=int, default=4, help="connections (%(default)s)")
    parser.add_argument("--shuffle", type=int, metavar="SEED", help="send in a shuffled order")


if __name__ == "__main__":
    sys.exit(main())
