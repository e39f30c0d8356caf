"""`car-train drift`: is the served model still right for what it is asked? Retrain or not.

Not a DVC stage (an Airflow task calls it on a schedule). The reference is the rows the served
champion was judged on (`champion_reference`), priced by the served bundle; the window is the
server's prediction log between --since and --until, or a replay file (see
`training.io.analysis_window`). With --labels, prices are joined by request id and the
realized error is measured too. Writes `paths.drift/<run>/`: `summary.json` (`DriftSummary`)
and NannyML's plots as HTML. The rules of the verdict: training/README.md, "Drift".
"""

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES
from shared_schema.bundle import Manifest, read_verified
from shared_schema.serving_folder import resolve
from training.config import Params, RolloutParams
from training.core import drift, live_evidence
from training.core.labels import LabelJoin, join_labels
from training.core.live_evidence import ShadowComparison
from training.core.market_index import period_of
from training.core.metrics import regression_metrics
from training.errors import PipelineError
from training.io import analysis_window, files, nannyml_drift, onnx_scoring, splits
from training.io.analysis_window import (
    CHALLENGER_PRED,
    CHALLENGER_VERSION,
    MODEL_VERSION,
    REQUEST_ID,
    Y_PRED,
    WindowRead,
)
from training.records import RetrainRecord

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Reference(msgspec.Struct, frozen=True, kw_only=True):
    """The reference: its rows (by default the test split) priced by the served bundle."""

    file: str
    rows: int
    chunks: int
    model_version: str
    mape: float
    mae: float
    #: The market periods the rows were priced at (each row its own); empty: the served level.
    periods: list[str] = []


class DriftSummary(msgspec.Struct, frozen=True, kw_only=True):
    """`summary.json`: what was read, what drifted, the errors, and the verdict."""

    run: str
    created_at: str
    verdict: drift.Verdict
    window: WindowRead
    labels: LabelJoin | None
    reference: Reference
    chunk_size: int
    window_chunk_size: int
    fields: list[drift.FieldDrift]
    multivariate: drift.MultivariateDrift
    estimated_mape: float | None
    realized_mape: float | None
    chunks: list[drift.ChunkPerformance]
    nannyml_warnings: list[str]
    plots: list[str]
    plot_errors: dict[str, str]
    #: Champion vs challenger on the labelled shadow rows; None without any.
    shadow: ShadowComparison | None = None


def champion_reference(params: Params, served: Manifest) -> Path:
    """The rows the served champion is judged against: what it was evaluated on, not trained on.

    A champion promoted by `car-train retrain` (its report names the served version as the
    champion after), or a level refresh of it (the served index's `parent_version`, the
    version whose forest it reuses, is that version), is judged against the new-market rows
    it was calibrated on (`paths.retrain_reference`); any other champion against the test
    split. Without this a retrained or refreshed champion would be compared with 2020
    traffic and every run would ask to retrain again.
    """
    report, rows = params.paths.retrain_report, params.paths.retrain_reference
    lineage = {served.model_version}
    if served.market is not None and served.market.parent_version is not None:
        lineage.add(served.market.parent_version)
    if report.is_file() and rows.is_file():
        record = msgspec.json.decode(report.read_bytes(), type=RetrainRecord)
        if record.promote and record.champion_version_after in lineage:
            return rows
    return splits.split_file(params.paths.splits, "test")


def reference_periods(params: Params, served: Manifest, rows: pd.DataFrame) -> pd.Series | None:
    """Each reference row's market period (by its listing's event time), to price it at.

    None when the served bundle has no index or the rows carry no `listing_id` (given with
    --reference): then they are priced at the served level, and the summary says so.

    Raises:
        PipelineError: A reference listing has no event time in `paths.labels`.
    """
    if served.market is None or "listing_id" not in rows.columns:
        return None
    labels = files.read_parquet(
        params.paths.labels, "labels", "car-train features", ("listing_id", "event_timestamp")
    )
    times = labels.drop_duplicates("listing_id").set_index("listing_id")["event_timestamp"]
    found = times.reindex(rows["listing_id"]).reset_index(drop=True)
    if found.isna().any():
        raise PipelineError(
            f"{int(found.isna().sum())} reference listing(s) have no event time in "
            f"{params.paths.labels}: their market period is unknown"
        )
    return period_of(found)


def _reference_prices(
    model_bytes: bytes,
    manifest: Manifest,
    rows: pd.DataFrame,
    periods: pd.Series | None,
    path: Path,
) -> np.ndarray:
    """The reference rows' prices, each at its own market's level when its period is known.

    2020 rows priced at 2022's level would be ~1.5x off: a reference error so large that the
    error rule could never fire.

    Raises:
        PipelineError: The served index has no level for a reference period (named).
    """
    if periods is None:
        return onnx_scoring.price_at(model_bytes, manifest, rows)
    try:
        return onnx_scoring.prices_at_periods(model_bytes, manifest, rows, periods)
    except KeyError as exc:
        raise PipelineError(f"{path}: {exc.args[0]}") from exc


def run(
    params: Params,
    *,
    log_dir: Path | None = None,
    replay: Path | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    labels: Path | None = None,
    run_name: str | None = None,
    closed_only: bool = False,
    reference: Path | None = None,
) -> DriftSummary:
    """Compare a window of requests with the reference; write the plots and the summary.

    Args:
        params: The pipeline params (`drift`, `paths.drift`, `paths.splits`,
            `paths.serving_bundle`).
        log_dir: The server's prediction log directory (or give `replay`).
        replay: A replay parquet file (or give `log_dir`).
        since: Window start, inclusive (timezone-aware).
        until: Window end, exclusive (timezone-aware).
        labels: Prices to join by request id (parquet or CSV: `request_id` or `listing_id`,
            and `price`).
        run_name: The output folder's name under `paths.drift`; the UTC time by default.
        closed_only: Read closed log segments only (skip `.open` ones).
        reference: The reference rows (parquet: the `Car` fields and `price`), priced by the
            served bundle; by default the served champion's own (`champion_reference`).

    Returns:
        The summary (also written to `paths.drift/<run>/summary.json`).

    Raises:
        PipelineError: No or two sources, an unreadable input, a bad run name, or an empty
            window.
    """
    if (log_dir is None) == (replay is None):
        raise PipelineError("give one source: a prediction log directory or a replay file")
    now = datetime.now(UTC)
    name = run_name or now.strftime("%Y%m%dT%H%M%SZ")
    if not _RUN_NAME.match(name):
        raise PipelineError(f"run name {name!r}: letters, digits, '.', '_' and '-' only")
    rules = params.drift
    # The bundle the serving folder's `current` names (or the folder itself, a plain bundle).
    served = read_verified(resolve(params.paths.serving_bundle).directory)
    model_bytes, manifest = served.model_bytes, served.manifest

    def score(frame: pd.DataFrame) -> np.ndarray:
        return onnx_scoring.run_graph(model_bytes, onnx_scoring.frame_feeds(frame, manifest.inputs))

    if log_dir is not None:
        window, read = analysis_window.read_log(log_dir, since, until, include_open=not closed_only)
    else:
        assert replay is not None
        window, read = analysis_window.read_replay(
            replay, since, until, score=score, model_version=manifest.model_version
        )
    if window.empty:
        raise PipelineError(
            f"{read.source}: no records in the window (read {read.read}, outside the window "
            f"{read.outside_window}, skipped {read.skipped or 'none'})"
        )
    join = None
    window[nannyml_drift.Y_TRUE] = np.nan
    if labels is not None:
        label_rows, id_column = analysis_window.read_labels(labels)
        prices, join = join_labels(window[REQUEST_ID], label_rows, id_column, str(labels))
        window[nannyml_drift.Y_TRUE] = prices

    reference_path = reference or champion_reference(params, manifest)
    required = (*FIELD_NAMES, "price")
    test = files.read_parquet(reference_path, "reference rows", "car-train split", required)
    reference_frame = analysis_window.car_fields(test)
    periods = reference_periods(params, manifest, test)
    reference_frame[Y_PRED] = _reference_prices(
        model_bytes, manifest, test, periods, reference_path
    )
    reference_frame[nannyml_drift.Y_TRUE] = test["price"].to_numpy(np.float64)
    reference_metrics = regression_metrics(
        reference_frame[nannyml_drift.Y_TRUE].to_numpy(), reference_frame[Y_PRED].to_numpy()
    )
    results = nannyml_drift.analyse(reference_frame, window, rules)

    fields = drift.field_drift(results.univariate, nannyml_drift.field_kinds(rules), rules)
    multivariate = drift.multivariate_drift(results.multivariate, rules)
    chunks = drift.chunk_performance(results.performance)
    labelled = window[nannyml_drift.Y_TRUE].notna().to_numpy()
    realized = (
        regression_metrics(
            window.loc[labelled, nannyml_drift.Y_TRUE].to_numpy(),
            window.loc[labelled, Y_PRED].to_numpy(),
        )["mape"]
        if labelled.any()
        else None
    )
    estimated = drift.window_mape(chunks)
    shadow = shadow_comparison(window, params.rollout)
    verdict = drift.decide(
        fields,
        multivariate,
        reference_mape=reference_metrics["mape"],
        estimated_mape=estimated,
        realized_mape=realized,
        labelled_rows=int(labelled.sum()),
        rules=rules,
    )
    out = params.paths.drift / name
    with files.all_or_nothing(out):
        out.mkdir(parents=True)
        plots, plot_errors = nannyml_drift.write_plots(results.figures, out)
        summary = DriftSummary(
            run=name,
            created_at=now.isoformat(),
            verdict=verdict,
            window=read,
            labels=join,
            reference=Reference(
                file=str(reference_path),
                rows=len(reference_frame),
                chunks=results.reference_chunks,
                model_version=manifest.model_version,
                mape=reference_metrics["mape"],
                mae=reference_metrics["mae_rub"],
                periods=[] if periods is None else sorted(set(periods)),
            ),
            chunk_size=rules.chunk_size,
            window_chunk_size=results.window_chunk_size,
            fields=fields,
            multivariate=multivariate,
            estimated_mape=estimated,
            realized_mape=realized,
            chunks=chunks,
            nannyml_warnings=results.warnings,
            plots=plots,
            plot_errors=plot_errors,
            shadow=shadow,
        )
        files.write_json(summary, out / SUMMARY_FILE)
    log.info(
        "drift run %s: %d records, retrain=%s, action=%s%s",
        name,
        read.records,
        verdict.retrain,
        verdict.action,
        "".join(f"\n  - {reason}" for reason in verdict.reasons),
    )
    return summary


def shadow_comparison(window: pd.DataFrame, rules: RolloutParams) -> ShadowComparison | None:
    """Champion vs challenger on the window's labelled shadow rows (`live_evidence.compare`).

    Rows of the most frequent (champion, challenger) pair of versions are compared; None when
    no labelled row was shadowed.
    """
    if CHALLENGER_PRED not in window.columns:
        return None
    rows = window[window[CHALLENGER_PRED].notna() & window[nannyml_drift.Y_TRUE].notna()]
    if rows.empty:
        return None
    pairs = rows.groupby([MODEL_VERSION, CHALLENGER_VERSION]).size()
    champion, challenger = (str(version) for version in pairs.idxmax())  # type: ignore[attr-defined]
    pair = rows[(rows[MODEL_VERSION] == champion) & (rows[CHALLENGER_VERSION] == challenger)]
    return live_evidence.compare(
        pair[nannyml_drift.Y_TRUE].to_numpy(np.float64),
        pair[Y_PRED].to_numpy(np.float64),
        pair[CHALLENGER_PRED].to_numpy(np.float64),
        versions=(str(champion), str(challenger)),
        confidence=rules.confidence,
        resamples=rules.bootstrap_resamples,
        seed=rules.seed,
    )
