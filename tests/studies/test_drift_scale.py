"""The drift-scale study's window generator and report, on tiny windows of synthetic cars.

Speed is the study's to measure, not the tests': these check what the generator writes (the
server's log format, every record readable, segments cut between lines, labels keyed by
request id, the prefix property of the seed) and how a stopped run is reported.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest
from studies.drift_scale.report import markdown
from studies.drift_scale.window import MAX_MILEAGE, write_window

from shared_schema.prediction_log import SEGMENT_PREFIX, read_prediction_log

from ..training.drift_windows import bundle_prices, synthetic_cars

START = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def listings() -> pd.DataFrame:
    """Synthetic listings with an asking price."""
    cars = synthetic_cars(50, seed=3)
    cars["price"] = np.linspace(300_000, 3_000_000, len(cars))
    return cars


def _window(listings: pd.DataFrame, bundle: Path, out: Path, records: int, **options: Any) -> Any:
    settings: dict[str, Any] = {
        "seed": 1,
        "start": START,
        "segment_bytes": 4096,
        "model_version": "7",
        "block": 8,
    }
    settings.update(options)
    return write_window(
        listings, out, records, score=lambda frame: bundle_prices(bundle, frame), **settings
    )


def test_every_record_reads_back_with_its_label(
    listings: pd.DataFrame, model_bundle: Path, tmp_path: Path
) -> None:
    """The log reader takes every generated record, each with a label under its request id."""
    files = _window(listings, model_bundle, tmp_path / "w", 30)
    log = read_prediction_log(files.log_dir)
    labels = pd.read_parquet(files.labels)
    assert (log.lines, len(log.records), log.skipped) == (30, 30, {})
    assert [r.request_id for r in log.records] == labels["request_id"].tolist()
    assert {r.model_version for r in log.records} == {"7"}
    ts = [r.ts for r in log.records]
    assert ts == sorted(ts)
    assert ts[0] == START
    assert all(0 <= r.car.mileage <= MAX_MILEAGE for r in log.records)
    assert (labels["price"] > 0).all()


def test_logged_prices_are_the_bundles_prices_of_the_logged_cars(
    listings: pd.DataFrame, model_bundle: Path, tmp_path: Path
) -> None:
    """price_rub is what the bundle answers for the car as logged (mileage varied included)."""
    files = _window(listings, model_bundle, tmp_path / "w", 20)
    records = read_prediction_log(files.log_dir).records
    cars = pd.DataFrame([msgspec.structs.asdict(r.car) for r in records])
    expected = bundle_prices(model_bundle, cars)
    np.testing.assert_allclose([r.price_rub for r in records], expected, rtol=1e-6)


def test_segments_are_cut_between_lines_at_the_size_limit(
    listings: pd.DataFrame, model_bundle: Path, tmp_path: Path
) -> None:
    """Every segment but the last holds at least the limit and ends with a whole line."""
    files = _window(listings, model_bundle, tmp_path / "w", 40, segment_bytes=2048)
    segments = sorted(files.log_dir.iterdir())
    assert len(segments) == files.segments > 2
    assert all(p.name.startswith(SEGMENT_PREFIX) for p in segments)
    sizes = [p.stat().st_size for p in segments]
    assert all(size >= 2048 for size in sizes[:-1])
    assert all(p.read_bytes().endswith(b"\n") for p in segments)
    assert sum(sizes) == files.log_bytes


def test_a_smaller_window_is_the_start_of_a_larger_one(
    listings: pd.DataFrame, model_bundle: Path, tmp_path: Path
) -> None:
    """Same seed: the 12-record window is the first 12 records (and labels) of the 30 one."""
    small = _window(listings, model_bundle, tmp_path / "small", 12)
    large = _window(listings, model_bundle, tmp_path / "large", 30)
    other = _window(listings, model_bundle, tmp_path / "other", 12, seed=2)
    small_log, large_log = (read_prediction_log(f.log_dir).records for f in (small, large))
    assert small_log == large_log[:12]
    small_labels = pd.read_parquet(small.labels)
    pd.testing.assert_frame_equal(small_labels, pd.read_parquet(large.labels).iloc[:12])
    other_cars = [r.car for r in read_prediction_log(other.log_dir).records]
    assert other_cars != [r.car for r in small_log]


@pytest.mark.parametrize(
    ("records", "drop", "existing", "message"),
    [
        (0, None, False, "records must be at least 1"),
        (5, "mileage", False, "lack the columns ['mileage']"),
        (5, "price", False, "lack the columns ['price']"),
        (5, None, True, "already exists"),
    ],
)
def test_bad_requests_are_refused_naming_the_problem(
    listings: pd.DataFrame,
    model_bundle: Path,
    tmp_path: Path,
    records: int,
    drop: str | None,
    existing: bool,
    message: str,
) -> None:
    """No records, listings without a field or a price, or an existing output: ValueError."""
    out = tmp_path / "w"
    if existing:
        out.mkdir()
    rows = listings.drop(columns=drop) if drop else listings
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _window(rows, model_bundle, out, records)


def _size(records: int, **measured: Any) -> dict[str, Any]:
    return {
        "window": {"records": records, "segments": 1, "log_bytes": 5e6},
        "exit_code": 0,
        "wall_s": 3.0,
        "peak_rss_mb": 700,
        "sampled_peak_rss_mb": 690,
        "stopped_over_cap_gb": None,
        "stopped_in_stage": None,
        "stopped_after_s": None,
        "stages": {
            "read_window": {"seconds": 1.0, "peak_rss_mb_after": 300},
            "read_labels": {"seconds": 0.5, "peak_rss_mb_after": 310},
        },
        **measured,
    }


def _report(label: str, sizes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "label": label,
        "commit": "abc1234",
        "date": "2026-12-06 21:00 UTC",
        "uncommitted_changes": False,
        "max_rss_gb": 10.0,
        "machine": {
            "host": "vm",
            "cpu": "cpu",
            "cores": 2,
            "memory_gb": 23.0,
            "available_gb_at_start": 16.0,
            "load_average_at_start": [1.0, 1.0, 1.0],
            "nice": 5,
            "python": "3.12",
        },
        "sizes": sizes,
    }


def test_report_names_a_stopped_run_and_its_stage_beside_the_earlier_run() -> None:
    """Stopped or killed runs name why and their stage; each size shows both runs' rows.

    A finished run shows the window's chunks from the job's summary.
    """
    capped = {"exit_code": -9, "stopped_over_cap_gb": 10.0, "stopped_in_stage": "join_labels"}
    capped["peak_rss_mb"] = None
    before = _report("before", [_size(100, **capped)])
    stopped = {"exit_code": -9, "stopped_after_s": 600.0, "stopped_in_stage": "write_plots"}
    killed = {"exit_code": -15, "wall_s": 1770.0, "stages": {}}
    chunked = {"window_chunks": 2, "window_chunk_size": 50}
    after = _report("after", [_size(100, **chunked), _size(1000, **stopped), _size(5000, **killed)])
    rows = [line for line in markdown(after, before).splitlines() if line[:3] in ("| 1", "| 5")]
    assert [row.split(" | ")[2] for row in rows] == ["before", "after", "after", "after"]
    assert "stopped > 10 GB in join_labels" in rows[0]
    assert "690 (sampled)" in rows[0]
    assert "done | 3 | 700 | 2 × 50 | 1.0 s, 300 MB | 0.5 s, 310 MB | – |" in rows[1]
    assert "690 (sampled) | – |" in rows[0]
    assert "stopped after 600 s in write_plots" in rows[2]
    assert "killed (signal 15) after 1770 s in read_window" in rows[3]
