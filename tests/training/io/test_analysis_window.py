"""Reading the drift window and its labels: every row counted, bad files named."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from shared_schema.prediction_log import PredictionRecord, encode_records, segment_name
from training.errors import PipelineError
from training.io.analysis_window import car_fields, read_labels, read_log, read_replay

from ..drift_windows import START, records, synthetic_cars


def _constant_price(frame: pd.DataFrame) -> np.ndarray:
    return np.full(len(frame), 1e6)


def test_replay_counts_rows_that_are_not_cars(tmp_path: Path) -> None:
    """A replay row breaking the `Car` schema is an `invalid_record` skip, named by its row."""
    cars = synthetic_cars(5, seed=0)
    cars.loc[2, "brand"] = "bmw"  # codes are upper case
    cars.loc[4, "mileage"] = -1
    path = tmp_path / "replay.parquet"
    cars.to_parquet(path)
    frame, read = read_replay(path, None, None, score=_constant_price, model_version="7")
    assert (read.read, read.records, read.skipped) == (5, 3, {"invalid_record": 2})
    assert "row 2" in read.first_skip["invalid_record"]
    assert read.predictions == "served bundle"
    assert read.model_versions == {"7": 3}
    assert frame["request_id"].tolist() == ["0", "1", "3"]
    assert frame["y_pred"].tolist() == [1e6] * 3


def test_replay_window_keeps_rows_by_ts_and_uses_logged_prices(tmp_path: Path) -> None:
    """Rows outside since/until are counted, not analysed; `price_rub` is used as given."""
    cars = synthetic_cars(4, seed=0)
    cars["listing_id"] = ["a", "b", "c", "d"]
    cars["ts"] = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"], utc=True)
    cars["price_rub"] = [1.0, 2.0, 3.0, 4.0]
    path = tmp_path / "replay.parquet"
    cars.to_parquet(path)
    since, until = datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC)
    frame, read = read_replay(path, since, until, score=_constant_price, model_version="1")
    assert (read.records, read.outside_window, read.predictions) == (2, 2, "replay file")
    assert frame["request_id"].tolist() == ["b", "c"]
    assert frame["y_pred"].tolist() == [2.0, 3.0]


def test_replay_window_needs_a_ts_column(tmp_path: Path) -> None:
    """--since on a replay without `ts` is an error, not a silently ignored option."""
    path = tmp_path / "replay.parquet"
    synthetic_cars(3, seed=0).to_parquet(path)
    with pytest.raises(PipelineError, match="'ts' column"):
        read_replay(
            path, datetime(2026, 1, 1, tzinfo=UTC), None, score=_constant_price, model_version="1"
        )


def test_labels_without_an_id_column_are_an_error(tmp_path: Path) -> None:
    """A labels file with a price but no request_id/listing_id is refused, naming the file."""
    path = tmp_path / "labels.csv"
    pd.DataFrame({"id": ["a"], "price": [1.0]}).to_csv(path, index=False)
    with pytest.raises(PipelineError, match="request_id"):
        read_labels(path)


def test_unreadable_labels_are_an_error(tmp_path: Path) -> None:
    """A labels file that is not parquet is refused with the file's name."""
    path = tmp_path / "labels.parquet"
    path.write_text("not parquet", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"labels\.parquet: cannot read"):
        read_labels(path)


def test_csv_label_ids_stay_text(tmp_path: Path) -> None:
    """Numeric-looking ids in a CSV are read as text, so they match the log's string ids."""
    path = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["007", "42"], "price": [1.0, 2.0]}).to_csv(path, index=False)
    frame, column = read_labels(path)
    assert column == "request_id"
    assert frame["request_id"].tolist() == ["007", "42"]


def _log_records() -> list[PredictionRecord]:
    """Ten records over two segments, the second's times before the first's, µs apart.

    Records 2 and 6 were shadowed: they carry a challenger's version and price.
    """
    cars = synthetic_cars(10, seed=4)
    cars.loc[3, "engine_displacement"] = None  # an electric car: a missing optional field
    logged = records(cars, np.linspace(5e5, 5e6, 10))
    return [
        msgspec.structs.replace(
            record,
            ts=START + timedelta(minutes=10 - 3 * (i // 5), microseconds=7 * i),
            model_version="1" if i < 7 else "2",
            challenger_version="c" if i in {2, 6} else None,
            challenger_price_rub=1.1 * record.price_rub if i in {2, 6} else None,
        )
        for i, record in enumerate(logged)
    ]


def _decoded_frame(kept: list[PredictionRecord]) -> pd.DataFrame:
    """The window frame made the plain way: from the decoded records, all held at once."""
    frame = car_fields(pd.DataFrame([msgspec.structs.asdict(r.car) for r in kept]))
    frame.insert(0, "request_id", pd.Series([r.request_id for r in kept], dtype=str))
    frame.insert(1, "ts", pd.to_datetime(pd.Series([r.ts for r in kept], dtype=object), utc=True))
    frame.insert(2, "model_version", pd.Series([r.model_version for r in kept], dtype=str))
    frame["y_pred"] = [r.price_rub for r in kept]
    frame["challenger_version"] = pd.Series([r.challenger_version for r in kept], dtype=object)
    frame["challenger_pred"] = pd.Series([r.challenger_price_rub for r in kept], dtype=np.float64)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def test_log_window_is_the_frame_of_the_decoded_records(tmp_path: Path) -> None:
    """Read a segment at a time, the window equals the frame of all its records decoded at once."""
    logged = _log_records()
    first = segment_name(START, "w1", 0)
    (tmp_path / first).write_bytes(encode_records(logged[:5]) + b"not json\n")
    (tmp_path / segment_name(START, "w1", 1)).write_bytes(encode_records(logged[5:]))
    until = logged[4].ts  # the first segment's last record falls outside the window
    frame, read = read_log(tmp_path, None, until, include_open=True)
    kept = [r for r in logged if r.ts < until]
    pd.testing.assert_frame_equal(frame, _decoded_frame(kept))
    assert np.isnan(frame.loc[frame["request_id"] == "req-3", "engine_displacement"]).all()
    assert (read.read, read.records, read.outside_window) == (11, 9, 1)
    assert read.skipped == {"malformed": 1}
    assert read.first_skip["malformed"].startswith(f"{tmp_path / first}:6: ")
    assert read.model_versions == {"1": 6, "2": 3}


def test_a_log_window_without_records_is_empty_with_every_column(tmp_path: Path) -> None:
    """Every record outside the window: no rows, the same columns (the job then says why)."""
    logged = _log_records()
    (tmp_path / segment_name(START, "w1", 0)).write_bytes(encode_records(logged))
    frame, read = read_log(tmp_path, START + timedelta(days=1), None, include_open=True)
    assert frame.empty
    assert list(frame.columns) == list(_decoded_frame(logged).columns)
    assert (read.read, read.outside_window, read.records) == (10, 10, 0)
