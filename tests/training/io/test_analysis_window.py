"""Reading the drift window and its labels: every row counted, bad files named."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.errors import PipelineError
from training.io.analysis_window import read_labels, read_replay

from ..drift_windows import synthetic_cars


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
