"""The analysis window of `car-train drift`, and its labels: read, checked, every row counted.

Two sources give the same frame (`REQUEST_ID`, `TS`, `MODEL_VERSION`, `Y_PRED` and the `Car`
fields, sorted by time when there is one):

* the server's prediction log (`shared_schema.prediction_log`, the one reader of it): lines
  it cannot take (a segment cut mid-line, another log format or schema version, a broken
  record) are counted per reason;
* a replay file: parquet with the `Car` fields and optionally `request_id` (else
  `listing_id`), `ts` and `price_rub` (the answered price; without it the served bundle
  prices the rows). A row that is not a valid `Car` is counted as `invalid_record`.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import pandas as pd

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, Car
from shared_schema.feeds import car_columns
from shared_schema.prediction_log import INVALID_RECORD, PredictionRecord, read_prediction_log
from training.errors import PipelineError
from training.io import raw

REQUEST_ID = "request_id"
LISTING_ID = "listing_id"
TS = "ts"
MODEL_VERSION = "model_version"
#: The answered price; NannyML's `y_pred`.
Y_PRED = "y_pred"
#: The challenger's version and shadow price of a shadowed record (log only; else missing).
CHALLENGER_VERSION = "challenger_version"
CHALLENGER_PRED = "challenger_pred"
#: A replay file's answered price column (the log record's name).
PRICE_RUB = "price_rub"
#: The labels' price column.
PRICE = "price"

Scorer = Callable[[pd.DataFrame], np.ndarray]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: Each column's dtype in `_LogColumns` (an empty window's columns need one too).
_EMPTY_DTYPE: dict[str, Any] = {
    REQUEST_ID: object,
    TS: np.int64,
    MODEL_VERSION: object,
    Y_PRED: np.float64,
    CHALLENGER_VERSION: object,
    CHALLENGER_PRED: np.float64,
    **{name: object if name in CATEGORICAL_FIELDS else np.float64 for name in FIELD_NAMES},
}


class WindowRead(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What was read for the window: `read == records + outside_window + sum(skipped)`.

    Attributes:
        source: The log directory or the replay file.
        kind: "prediction_log" or "replay".
        since: The window's start (inclusive), ISO 8601; None for none.
        until: The window's end (exclusive), ISO 8601; None for none.
        files: Files read.
        read: Lines (log) or rows (replay) read.
        outside_window: Readable records outside since/until.
        skipped: Lines or rows not taken, per reason.
        first_skip: Per reason, where it first occurred and why.
        records: Records in the window: the rows analysed.
        model_versions: Records per model version that priced them.
        predictions: Where the prices come from: "logged", "replay file" or "served bundle".
    """

    source: str
    kind: Literal["prediction_log", "replay"]
    since: str | None
    until: str | None
    files: list[str]
    read: int
    outside_window: int
    skipped: dict[str, int]
    first_skip: dict[str, str]
    records: int
    model_versions: dict[str, int]
    predictions: str


def read_log(
    directory: Path, since: datetime | None, until: datetime | None, *, include_open: bool
) -> tuple[pd.DataFrame, WindowRead]:
    """The prediction log's records in [since, until) as the window frame.

    Read one segment at a time into compact columns (`_LogColumns`): a million records peak
    at ~0.3 KB each rather than the ~1.3 KB of holding every decoded record and building the
    frame from them (`studies/drift_scale`).

    Raises:
        PipelineError: The directory does not exist or a segment cannot be read.
    """
    if not directory.is_dir():
        raise PipelineError(f"{directory}: prediction log directory not found")
    columns = _LogColumns()
    try:
        log = read_prediction_log(
            directory, since=since, until=until, include_open=include_open, on_records=columns.add
        )
    except OSError as exc:
        raise PipelineError(f"{directory}: cannot read the prediction log: {exc}") from exc
    frame = columns.frame()
    summary = WindowRead(
        source=str(directory),
        kind="prediction_log",
        since=_iso(since),
        until=_iso(until),
        files=log.files,
        read=log.lines,
        outside_window=log.outside_window,
        skipped=log.skipped,
        first_skip=log.first_skip,
        records=len(frame),
        model_versions=_versions(frame),
        predictions="logged",
    )
    return frame, summary


class _LogColumns:
    """Log records gathered as the window frame's columns, one segment's records at a time.

    Numbers go into float64 arrays and times into int64 microseconds; a repeated string (a
    category, a model version) is kept once and referenced, as `pd.Categorical` would, but the
    columns stay `str` as NannyML and the reference expect (`car_fields`).
    """

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._parts: dict[str, list[np.ndarray]] = {
            name: []
            for name in (
                REQUEST_ID,
                TS,
                MODEL_VERSION,
                Y_PRED,
                CHALLENGER_VERSION,
                CHALLENGER_PRED,
                *FIELD_NAMES,
            )
        }

    def add(self, records: list[PredictionRecord]) -> None:
        """Append one segment's records."""
        if not records:
            return
        shared = self._strings.setdefault
        parts = self._parts
        parts[REQUEST_ID].append(np.array([r.request_id for r in records], dtype=object))
        parts[TS].append(np.array([(r.ts - _EPOCH) // _MICROSECOND for r in records], np.int64))
        parts[MODEL_VERSION].append(
            np.array([shared(r.model_version, r.model_version) for r in records], dtype=object)
        )
        parts[Y_PRED].append(np.array([r.price_rub for r in records], dtype=np.float64))
        # A record that was not shadowed has neither: None and NaN.
        parts[CHALLENGER_VERSION].append(
            np.array([r.challenger_version for r in records], dtype=object)
        )
        shadow_prices = [r.challenger_price_rub for r in records]
        parts[CHALLENGER_PRED].append(
            np.array([np.nan if p is None else p for p in shadow_prices], dtype=np.float64)
        )
        cars = [r.car for r in records]
        for name in FIELD_NAMES:
            values = [getattr(car, name) for car in cars]
            if name in CATEGORICAL_FIELDS:
                parts[name].append(np.array([shared(v, v) for v in values], dtype=object))
            else:
                # None (a missing optional field) becomes NaN, as in `car_fields`.
                parts[name].append(np.array(values, dtype=np.float64))

    def frame(self) -> pd.DataFrame:
        """The window frame, as `_frame` makes it: sorted by time, file order among equals.

        Called once: the columns are handed over to the frame.

        Each column is joined and put in time order on its own, its parts dropped at once, so
        the peak is the columns plus one column rather than the columns three times over.
        """
        ts = self._joined(TS)
        order = np.argsort(ts, kind="stable")
        frame = pd.DataFrame({name: self._joined(name)[order] for name in FIELD_NAMES}, copy=False)
        frame.insert(0, REQUEST_ID, self._joined(REQUEST_ID)[order])
        frame.insert(1, TS, pd.to_datetime(ts[order], unit="us", utc=True).as_unit("ns"))
        frame.insert(2, MODEL_VERSION, self._joined(MODEL_VERSION)[order])
        frame[Y_PRED] = self._joined(Y_PRED)[order]
        frame[CHALLENGER_VERSION] = self._joined(CHALLENGER_VERSION)[order]
        frame[CHALLENGER_PRED] = self._joined(CHALLENGER_PRED)[order]
        return frame

    def _joined(self, name: str) -> np.ndarray:
        parts = self._parts.pop(name, [])
        return np.concatenate(parts) if parts else np.array([], dtype=_EMPTY_DTYPE[name])


def read_replay(
    path: Path,
    since: datetime | None,
    until: datetime | None,
    *,
    score: Scorer,
    model_version: str,
) -> tuple[pd.DataFrame, WindowRead]:
    """A replay file's valid rows in [since, until) as the window frame.

    Args:
        path: The parquet file (module docstring).
        since: Keep rows with `ts >= since`; needs a `ts` column.
        until: Keep rows with `ts < until`; needs a `ts` column.
        score: Prices rows that have no `price_rub` (the served bundle).
        model_version: The served bundle's version, recorded for the rows it prices.

    Raises:
        PipelineError: The file is missing or unreadable, lacks a `Car` field, or a window is
            asked of a file without `ts`.
    """
    table = raw.read_parquet(path, FIELD_NAMES)
    if (since or until) and TS not in table.columns:
        raise PipelineError(f"{path}: --since/--until need a {TS!r} column in the replay file")
    id_column = next((c for c in (REQUEST_ID, LISTING_ID) if c in table.columns), None)
    ids = (
        table[id_column].astype(str) if id_column else pd.Series(table.index.astype(str))
    ).tolist()
    ts = pd.to_datetime(table[TS], utc=True) if TS in table.columns else None
    cars: list[Car] = []
    kept: list[int] = []
    skipped: dict[str, int] = {}
    first_skip: dict[str, str] = {}
    outside = 0
    fields = table[list(FIELD_NAMES)].astype(object).where(table[list(FIELD_NAMES)].notna(), None)
    for position, row in enumerate(fields.to_dict("records")):
        try:
            car = msgspec.convert(row, Car, strict=False)
        except msgspec.ValidationError as exc:
            skipped[INVALID_RECORD] = skipped.get(INVALID_RECORD, 0) + 1
            first_skip.setdefault(INVALID_RECORD, f"{path}: row {position}: {exc}")
            continue
        if ts is not None and not _inside(ts.iloc[position], since, until):
            outside += 1
            continue
        cars.append(car)
        kept.append(position)
    logged = PRICE_RUB in table.columns
    frame = _frame(
        cars,
        ids=[ids[i] for i in kept],
        ts=[ts.iloc[i] for i in kept] if ts is not None else [None] * len(kept),
        versions=[model_version] * len(kept),
        predictions=table[PRICE_RUB].iloc[kept].tolist() if logged else [None] * len(kept),
    )
    if not logged and len(frame):
        frame[Y_PRED] = np.asarray(score(frame), dtype=np.float64)
    summary = WindowRead(
        source=str(path),
        kind="replay",
        since=_iso(since),
        until=_iso(until),
        files=[str(path)],
        read=len(table),
        outside_window=outside,
        skipped=skipped,
        first_skip=first_skip,
        records=len(frame),
        model_versions=_versions(frame),
        predictions="replay file" if logged else "served bundle",
    )
    return frame, summary


def read_labels(path: Path) -> tuple[pd.DataFrame, str]:
    """A labels file (parquet or CSV): its rows and the id column (`request_id` first).

    Raises:
        PipelineError: The file is missing or unreadable, or lacks an id column or `price`.
    """
    if path.suffix == ".csv" or path.name.endswith(".csv.gz"):
        frame = raw.read_csv(path, [PRICE], text_columns=(REQUEST_ID, LISTING_ID))
    else:
        frame = raw.read_parquet(path, [PRICE])
    id_column = next((c for c in (REQUEST_ID, LISTING_ID) if c in frame.columns), None)
    if id_column is None:
        raise PipelineError(f"{path}: labels need a {REQUEST_ID!r} or {LISTING_ID!r} column")
    return frame, id_column


def _frame(
    cars: Sequence[Car],
    *,
    ids: Sequence[str],
    ts: Sequence[Any],
    versions: Sequence[str],
    predictions: Sequence[float | None],
) -> pd.DataFrame:
    frame = car_fields(pd.DataFrame(car_columns(cars), columns=list(FIELD_NAMES)))
    frame.insert(0, REQUEST_ID, pd.Series(list(ids), dtype=str))
    frame.insert(1, TS, pd.to_datetime(pd.Series(list(ts), dtype=object), utc=True))
    frame.insert(2, MODEL_VERSION, pd.Series(list(versions), dtype=str))
    frame[Y_PRED] = pd.Series(list(predictions), dtype=np.float64)
    # Chunks follow time; a stable sort keeps the file order among equal times.
    return frame.sort_values(TS, kind="stable").reset_index(drop=True)


def car_fields(frame: pd.DataFrame) -> pd.DataFrame:
    """The `Car` fields of a frame as NannyML compares them: categories str, numbers float64.

    The reference (a split) and the window must agree, or a field would be read as categorical
    on one side and continuous on the other.
    """
    return pd.DataFrame(
        {
            name: frame[name].astype(str)
            if name in CATEGORICAL_FIELDS
            else pd.to_numeric(frame[name]).astype(np.float64)
            for name in FIELD_NAMES
        },
        index=frame.index,
    )


def _inside(ts: pd.Timestamp, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or ts >= since) and (until is None or ts < until)


def _versions(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame[MODEL_VERSION].value_counts().sort_index().items()}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
