"""`car-train drift` end to end on synthetic windows: the verdict, the counts, the label join.

Each window is analysed once per module (NannyML takes seconds); the tests read its summary.
"""

import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest

from shared_schema.bundle import Manifest, read_verified
from shared_schema.market import MarketIndex
from shared_schema.prediction_log import OPEN_SUFFIX, encode_records, segment_name
from training.cli import main
from training.config import Params
from training.errors import PipelineError
from training.io import files, onnx_scoring, splits
from training.jobs.drift import SUMMARY_FILE, champion_reference, reference_periods
from training.records import MarketScores, RetrainRecord

from ..drift_windows import (
    REFERENCE_ROWS,
    START,
    bundle_prices,
    known_error_prices,
    records,
    synthetic_cars,
)

WINDOW_ROWS = 400
#: The shadow challenger's price / the label, on the shadowed rows of `log_run`.
SHADOW_FACTOR = 1.05
#: Label rows per outcome in the log window's labels file (see `log_run`).
LABEL_OUTCOMES = {
    "missing_id": 0,
    "duplicate_id": 2,
    "missing_price": 1,
    "non_positive_price": 2,
    "unknown_id": 2,
    "ambiguous_id": 0,
    "matched": 390,
}


def _run(params_file: Path, *args: str) -> int:
    return main(["--params", str(params_file), "drift", *args])


def _summary(params: Params, run: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((params.paths.drift / run / SUMMARY_FILE).read_text())
    return summary


@pytest.fixture(scope="module")
def log_run(drift_root: Path, drift_params: Params) -> dict[str, Any]:
    """An unshifted window in a prediction log with a cut and an other-schema segment, labelled.

    Segments: 200 records shadowed by challenger 9 (closed); 200 records and a line cut by a
    crash (open); 30 records of schema 2.0.0. Labels: req-0..389 priced with APE 0.1/0.3 in
    turn, req-390/391 at 0 and -5, req-392 without a price, req-393 twice, two ids of no window
    record; req-394..399 unlabelled.
    """
    cars = synthetic_cars(WINDOW_ROWS, seed=2)
    predicted = bundle_prices(drift_params.paths.serving_bundle, cars)
    logged = records(cars, predicted)
    prices = known_error_prices(predicted)
    # The first 200 were shadowed by challenger "9", whose price is off its label by 5 %.
    shadowed = [
        msgspec.structs.replace(
            record, challenger_version="9", challenger_price_rub=float(prices[i] * SHADOW_FACTOR)
        )
        for i, record in enumerate(logged[:200])
    ]
    log_dir = drift_root / "log"
    log_dir.mkdir()
    (log_dir / segment_name(START, "w1", 1)).write_bytes(encode_records(shadowed))
    cut = encode_records(logged[200:]) + b'{"log_format": 1, "ts": "2026-11'
    (log_dir / (segment_name(START, "w2", 1) + OPEN_SUFFIX)).write_bytes(cut)
    other = records(cars[:30], predicted[:30], first=1000, schema_version="2.0.0")
    (log_dir / segment_name(START, "w3", 1)).write_bytes(encode_records(other))
    labels = pd.DataFrame(
        [{"request_id": f"req-{i}", "price": prices[i]} for i in range(390)]
        + [
            {"request_id": "req-390", "price": 0.0},
            {"request_id": "req-391", "price": -5.0},
            {"request_id": "req-392", "price": None},
            {"request_id": "req-393", "price": prices[393]},
            {"request_id": "req-393", "price": prices[393]},
            {"request_id": "nope-1", "price": 1e6},
            {"request_id": "req-1000", "price": 1e6},
        ]
    )
    labels_file = drift_root / "labels.csv"
    labels.to_csv(labels_file, index=False)
    params_file = drift_root / "params.yaml"
    assert (
        _run(params_file, "--log", str(log_dir), "--labels", str(labels_file), "--run", "log") == 0
    )
    return _summary(drift_params, "log")


@pytest.fixture(scope="module")
def shifted_run(drift_root: Path, drift_params: Params) -> dict[str, Any]:
    """A replay file of shifted cars without prices (the served bundle prices them)."""
    replay = drift_root / "shifted.parquet"
    cars = synthetic_cars(WINDOW_ROWS, seed=3, shifted=True)
    cars.insert(0, "listing_id", [f"new-{i}" for i in range(len(cars))])
    cars.to_parquet(replay)
    assert _run(drift_root / "params.yaml", "--replay", str(replay), "--run", "shifted") == 0
    return _summary(drift_params, "shifted")


@pytest.mark.slow
def test_shifted_window_drifts_and_asks_to_retrain(shifted_run: dict[str, Any]) -> None:
    """Older, higher-mileage, more powerful cars of another brand mix: drift, retrain."""
    drifting = {field["field"] for field in shifted_run["fields"] if field["drifting"]}
    assert {"brand", "production_year", "engine_power", "mileage"} <= drifting
    assert shifted_run["verdict"]["retrain"] is True
    assert any("fields drift" in reason for reason in shifted_run["verdict"]["reasons"])
    assert shifted_run["window"]["predictions"] == "served bundle"
    assert shifted_run["labels"] is None
    assert shifted_run["realized_mape"] is None


@pytest.mark.slow
def test_unshifted_window_does_not_ask_to_retrain(log_run: dict[str, Any]) -> None:
    """Cars from the reference's distribution, with its error: no rule triggers."""
    assert log_run["verdict"] == {
        **log_run["verdict"],
        "retrain": False,
        "reasons": [],
    }, log_run["verdict"]
    assert sum(field["drifting"] for field in log_run["fields"]) == 0


@pytest.mark.slow
def test_log_skips_are_counted_and_named(log_run: dict[str, Any]) -> None:
    """The cut line and the other schema's records are counted per reason, none lost."""
    window = log_run["window"]
    assert window["skipped"] == {"cut_line": 1, "schema_version": 30}
    assert window["read"] == 431
    assert window["records"] == WINDOW_ROWS
    assert window["read"] == window["records"] + window["outside_window"] + 31
    assert set(window["first_skip"]) == {"cut_line", "schema_version"}
    assert len(window["files"]) == 3


@pytest.mark.slow
def test_label_join_counts_every_label_row(log_run: dict[str, Any]) -> None:
    """Unknown, duplicate, missing and non-positive labels are counted and named."""
    labels = log_run["labels"]
    assert labels["outcomes"] == LABEL_OUTCOMES
    assert labels["rows"] == sum(LABEL_OUTCOMES.values())
    assert labels["labelled_records"] == 390
    assert labels["unlabelled_records"] == 10
    assert sorted(labels["examples"]["unknown_id"]) == ["nope-1", "req-1000"]
    assert labels["examples"]["duplicate_id"] == ["req-393"]
    assert sorted(labels["examples"]["non_positive_price"]) == ["req-390", "req-391"]


@pytest.mark.slow
def test_realized_mape_is_the_mean_ape_of_the_labelled_rows(log_run: dict[str, Any]) -> None:
    """APE 0.1 and 0.3 on alternate rows: realized MAPE 0.2, per chunk and for the window."""
    assert log_run["realized_mape"] == pytest.approx(0.2, abs=1e-6)
    assert log_run["reference"]["mape"] == pytest.approx(0.2, abs=1e-6)
    chunks = log_run["chunks"]
    assert [chunk["labelled_rows"] for chunk in chunks] == [100, 100, 100, 90]
    assert [chunk["realized_mape"] for chunk in chunks] == pytest.approx([0.2] * 4, abs=1e-6)
    assert log_run["estimated_mape"] == pytest.approx(0.2, abs=0.03)


@pytest.mark.slow
def test_shadow_rows_compare_champion_and_challenger_on_the_same_labels(
    log_run: dict[str, Any],
) -> None:
    """200 labelled shadow rows: MAPE 0.2 vs 0.05, the paired interval wholly below zero."""
    shadow = log_run["shadow"]
    assert (shadow["champion_version"], shadow["challenger_version"]) == ("1", "9")
    assert shadow["labelled_rows"] == 200
    assert shadow["champion_mape"] == pytest.approx(0.2, abs=1e-6)
    assert shadow["challenger_mape"] == pytest.approx(SHADOW_FACTOR - 1, abs=1e-6)
    assert shadow["ci_low"] <= shadow["difference"] <= shadow["ci_high"] < 0.0


@pytest.mark.slow
def test_plots_are_written_beside_the_summary(
    drift_params: Params, log_run: dict[str, Any]
) -> None:
    """Every plot named in the summary is an HTML file in the run's folder."""
    assert "univariate_drift.html" in log_run["plots"]
    assert "realized_performance.html" in log_run["plots"]
    for name in log_run["plots"]:
        assert (drift_params.paths.drift / "log" / name).stat().st_size > 0


@pytest.mark.slow
def test_an_empty_window_is_an_error(
    drift_root: Path, log_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A window with no records fails with the counts, and writes no run folder."""
    code = _run(
        drift_root / "params.yaml",
        "--log",
        str(drift_root / "log"),
        "--since",
        "2030-01-01",
        "--run",
        "empty",
    )
    assert code == 1
    assert "no records in the window" in capsys.readouterr().err
    assert not (drift_root / "data" / "drift" / "empty").exists()


@pytest.mark.slow
def test_a_labels_file_without_prices_is_an_error(
    drift_root: Path, log_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels lacking the price column fail with a message naming the file and column."""
    bad = drift_root / "bad_labels.parquet"
    pd.DataFrame({"request_id": ["req-1"], "cost": [1.0]}).to_parquet(bad)
    code = _run(drift_root / "params.yaml", "--log", str(drift_root / "log"), "--labels", str(bad))
    assert code == 1
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "price" in err


@pytest.mark.slow
def test_summary_decodes_as_the_job_record(drift_params: Params, log_run: dict[str, Any]) -> None:
    """summary.json is the job's `DriftSummary`, readable back with its types."""
    from training.jobs.drift import DriftSummary

    raw = (drift_params.paths.drift / "log" / SUMMARY_FILE).read_bytes()
    summary = msgspec.json.decode(raw, type=DriftSummary)
    assert summary.window.records == WINDOW_ROWS


@pytest.mark.slow
def test_reference_option_judges_the_window_against_those_rows(
    drift_root: Path, drift_params: Params, shifted_run: dict[str, Any]
) -> None:
    """`--reference`: shifted cars judged against shifted reference rows: no field drifts."""
    reference = synthetic_cars(REFERENCE_ROWS, seed=4, shifted=True)
    reference["price"] = known_error_prices(
        bundle_prices(drift_params.paths.serving_bundle, reference)
    )
    reference_file = drift_root / "new-market-reference.parquet"
    reference.to_parquet(reference_file)
    replay = drift_root / "shifted.parquet"  # written by `shifted_run`
    args = ["--replay", str(replay), "--reference", str(reference_file), "--run", "rebased"]
    assert _run(drift_root / "params.yaml", *args) == 0
    rebased = _summary(drift_params, "rebased")
    assert sum(field["drifting"] for field in shifted_run["fields"]) >= 4
    assert [field["field"] for field in rebased["fields"] if field["drifting"]] == []
    assert rebased["reference"]["file"] == str(reference_file)
    assert rebased["reference"]["rows"] == REFERENCE_ROWS


@pytest.mark.slow
def test_a_retrained_champion_is_judged_against_its_new_market_rows(
    drift_params: Params,
) -> None:
    """The default reference follows the served champion: retrained → its calibration rows."""
    paths = drift_params.paths
    served = read_verified(paths.serving_bundle).manifest

    def version(name: str) -> Manifest:
        return msgspec.structs.replace(served, model_version=name)

    test_split = splits.split_file(paths.splits, "test")
    assert champion_reference(drift_params, version("1")) == test_split  # no retrain yet
    scores = MarketScores(version="2", holdout_mape=0.2, test_2020_mape=0.15)
    record = RetrainRecord(
        promote=True,
        reason="better on the new market",
        model_name="car-price",
        challenger=scores,
        champion=None,
        old_market_tolerance=0.5,
        champion_version_before="1",
        champion_version_after="2",
        holdout_rows=200,
        holdout_from="a",
        holdout_to="b",
        test_2020_rows=1000,
        train_rows=1000,
        val_rows=100,
        calibration_rows=100,
        half_life_days=180.0,
    )
    try:
        files.write_json(record, paths.retrain_report)
        assert champion_reference(drift_params, version("2")) == test_split  # its rows are missing
        paths.retrain_reference.parent.mkdir(parents=True, exist_ok=True)
        synthetic_cars(10, seed=5).assign(price=1e6).to_parquet(paths.retrain_reference)
        assert champion_reference(drift_params, version("2")) == paths.retrain_reference
        assert champion_reference(drift_params, version("1")) == test_split  # v1 is served, not v2
        # A level refresh of v2 (v3, its forest v2's) is judged on v2's rows; one of v1 is not.
        index = MarketIndex(
            method="m",
            periods=[],
            levels=[],
            rows=[],
            market_date="2022-04-01",
            served_level=0.5,
            served_rows=300,
        )
        for parent, expected in (("2", paths.retrain_reference), ("1", test_split)):
            refreshed = msgspec.structs.replace(
                version("3"), market=msgspec.structs.replace(index, parent_version=parent)
            )
            assert champion_reference(drift_params, refreshed) == expected, parent
        refused = msgspec.structs.replace(record, promote=False, champion_version_after="1")
        files.write_json(refused, paths.retrain_report)
        assert champion_reference(drift_params, version("1")) == test_split
    finally:
        paths.retrain_report.unlink(missing_ok=True)
        paths.retrain_reference.unlink(missing_ok=True)


def test_reference_rows_are_priced_at_their_own_periods_level(drift_params: Params) -> None:
    """A served 2022 level does not price the 2020 test split: each row gets its own day's."""
    paths = drift_params.paths
    served = read_verified(paths.serving_bundle)
    index = MarketIndex(
        method="m",
        periods=["2020-09-09", "2022-04-01"],
        levels=[0.0, 0.5],
        rows=[100, 100],
        market_date="2022-04-01",
        served_level=0.5,
        served_rows=100,
    )
    manifest = msgspec.structs.replace(served.manifest, market=index)
    test = splits.read(paths.splits, "test")
    times = pd.Series(pd.Timestamp("2020-09-09T10:00:00Z"), index=range(len(test)))
    labels = pd.DataFrame({"listing_id": test["listing_id"], "event_timestamp": times})
    try:
        files.write_parquet(labels.iloc[1:], paths.labels)
        with pytest.raises(PipelineError, match="1 reference listing"):
            reference_periods(drift_params, manifest, test)
        files.write_parquet(labels, paths.labels)
        periods = reference_periods(drift_params, manifest, test)
        assert periods is not None
        assert set(periods) == {"2020-09-09"}
        assert reference_periods(drift_params, served.manifest, test) is None  # no index
        priced = onnx_scoring.prices_at_periods(served.model_bytes, manifest, test, periods)
        at_served = onnx_scoring.price_at(served.model_bytes, manifest, test)
        np.testing.assert_allclose(priced, at_served * np.exp(-0.5), rtol=1e-9)
    finally:
        paths.labels.unlink(missing_ok=True)
