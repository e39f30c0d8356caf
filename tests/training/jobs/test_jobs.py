import contextlib
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from shared_schema import FIELD_NAMES
from training.cli import main
from training.config import PathParams, load_params
from training.core.features import FEATURE_COLUMNS, LABEL_COLUMNS, compare_with_table
from training.io import feast_store, files, splits

from ..raw_markets import row_2020, synthetic_2020, synthetic_2022, write_raw


def _paths(workdir: Path) -> PathParams:
    """Where the workdir's params put each output."""
    return load_params(workdir / "params.yaml").paths


def _ingest(workdir: Path) -> int:
    return main(["--params", str(workdir / "params.yaml"), "ingest"])


def _outputs(workdir: Path) -> list[Path]:
    return [
        _paths(workdir).listings,
        _paths(workdir).quarantine,
        _paths(workdir).ingest_report,
    ]


def test_ingest_writes_listings_quarantine_and_report(workdir: Path) -> None:
    """Ingest accepts the valid rows of both sources and reports per-source counts."""
    assert _ingest(workdir) == 0
    report = json.loads(_paths(workdir).ingest_report.read_text(encoding="utf-8"))
    assert report["sources"]["autoru_2020_moscow"]["accepted"] == 40
    assert report["sources"]["autoru_2022_msk_spb"]["accepted"] == 20
    assert report["listings"] == 60
    listings = pd.read_parquet(_paths(workdir).listings)
    assert listings["listing_id"].is_unique
    assert _paths(workdir).quarantine.read_text(encoding="utf-8") == ""


def test_ingest_counts_quarantine_and_duplicates(workdir: Path) -> None:
    """Bad rows land in the quarantine file with reasons; duplicates are counted, not dropped."""
    frame = pd.concat(
        [synthetic_2020(197), pd.DataFrame([row_2020(), row_2020(), row_2020(n_doors=0)])],
        ignore_index=True,
    )
    write_raw(workdir / "raw", frame, synthetic_2022(3))
    assert _ingest(workdir) == 0
    report = json.loads(_paths(workdir).ingest_report.read_text(encoding="utf-8"))
    counts = report["sources"]["autoru_2020_moscow"]
    expected = {"rows_in": 200, "quarantined": 1, "quarantined_share": 0.005}
    assert counts == counts | expected | {"duplicates_collapsed": 1}
    assert counts["quarantined_by_reason"] == {"n_doors: Expected `int` >= 1": 1}
    lines = _paths(workdir).quarantine.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["field"] == "n_doors"


def test_ingest_refuses_a_source_mostly_quarantined(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over `ingest.max_quarantined_share` quarantined, ingest fails naming source and share."""
    broken = synthetic_2022(20)
    broken.loc[:4, "price"] = 1.0  # a broken export: 5 of 20 prices implausible
    write_raw(workdir / "raw", synthetic_2020(), broken)
    assert _ingest(workdir) == 1
    err = capsys.readouterr().err
    assert "source autoru_2022_msk_spb (auto_ru_2022-03_msk_spb_xelorr.parquet)" in err
    assert "5 of 20 rows quarantined (25.00%), over ingest.max_quarantined_share 1.00%" in err
    assert "most common: price: Expected 10000 <= price <= 100000000 (5)" in err
    assert "autoru_2020_moscow" not in err  # the healthy source is not blamed
    assert not any(p.exists() for p in _outputs(workdir))


def test_ingest_quarantine_limit_comes_from_params(workdir: Path) -> None:
    """The same broken source is accepted when params.yaml allows that share."""
    broken = synthetic_2022(20)
    broken.loc[:4, "price"] = 1.0
    write_raw(workdir / "raw", synthetic_2020(), broken)
    params = yaml.safe_load((workdir / "params.yaml").read_text(encoding="utf-8"))
    params["ingest"]["max_quarantined_share"] = 0.25
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), "utf-8")
    assert _ingest(workdir) == 0
    report = json.loads(_paths(workdir).ingest_report.read_text(encoding="utf-8"))
    assert report["sources"]["autoru_2022_msk_spb"]["quarantined_share"] == 0.25


def test_ingest_is_idempotent(workdir: Path) -> None:
    """The same input gives the same listing ids and byte-identical outputs."""
    assert _ingest(workdir) == 0
    first = [files.sha256_file(p) for p in _outputs(workdir)[:2]]
    ids = pd.read_parquet(_paths(workdir).listings)["listing_id"].tolist()
    assert _ingest(workdir) == 0
    assert [files.sha256_file(p) for p in _outputs(workdir)[:2]] == first
    again = pd.read_parquet(_paths(workdir).listings)["listing_id"].tolist()
    assert again == ids


def test_missing_input_file_fails_naming_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing raw file is a clear error naming the file, and leaves no outputs."""
    assert _ingest(workdir) == 0
    (workdir / "raw/auto_ru_2022-03_msk_spb_xelorr.parquet").unlink()
    assert _ingest(workdir) == 1
    err = capsys.readouterr().err
    assert "auto_ru_2022-03_msk_spb_xelorr.parquet: input file not found" in err
    assert not any(p.exists() for p in _outputs(workdir))


def test_missing_column_fails_naming_file_and_column(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A raw file without a required column is an error naming the file and the column."""
    write_raw(workdir / "raw", synthetic_2020().drop(columns=["mileage"]), synthetic_2022())
    assert _ingest(workdir) == 1
    err = capsys.readouterr().err
    assert "auto_ru_2020-09-09_moscow.csv.gz: missing column(s) mileage" in err
    assert not any(p.exists() for p in _outputs(workdir))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("auto_ru_2022-03_msk_spb_xelorr.parquet", b"not a parquet file", "cannot read as parquet"),
        ("auto_ru_2020-09-09_moscow.csv.gz", b"\x1f\x8b broken gzip", "cannot read as CSV"),
        ("auto_ru_2020-09-09_moscow.csv.gz", b"", "file is empty"),
    ],
)
def test_unreadable_file_fails_naming_it(
    workdir: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, message: str
) -> None:
    """A corrupt or empty raw file is an error naming the file, with no outputs left."""
    (workdir / "raw" / name).write_bytes(content)
    assert _ingest(workdir) == 1
    err = capsys.readouterr().err
    assert f"{name}: " in err
    assert message in err
    assert not any(p.exists() for p in _outputs(workdir))


def test_features_need_the_listings(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Features without an ingest output fails naming the missing file."""
    assert main(["--params", str(workdir / "params.yaml"), "features"]) == 1
    assert "listings.parquet: listings not found" in capsys.readouterr().err


def test_features_write_feature_and_label_tables(workdir: Path) -> None:
    """Features writes one row per listing: the key, time, source and the raw fields only."""
    params = str(workdir / "params.yaml")
    assert main(["--params", params, "ingest"]) == 0
    assert main(["--params", params, "features"]) == 0
    cars = pd.read_parquet(_paths(workdir).features)
    labels = pd.read_parquet(_paths(workdir).labels)
    assert tuple(cars.columns) == ("listing_id", "event_timestamp", "source", *FIELD_NAMES)
    assert tuple(cars.columns) == FEATURE_COLUMNS
    assert tuple(labels.columns) == LABEL_COLUMNS
    assert len(cars) == len(labels) == 60


@pytest.mark.slow
def test_feast_training_frame_equals_feature_table(workdir: Path) -> None:
    """Through Feast (apply, point-in-time join) the frame equals the table; nothing online."""
    params = str(workdir / "params.yaml")
    for step in ("ingest", "features", "feature-store"):
        assert main(["--params", params, step]) == 0, step
    store = load_params(params).feature_store
    table = pd.read_parquet(_paths(workdir).features)
    labels = pd.read_parquet(_paths(workdir).labels)
    entities = labels[["listing_id", "event_timestamp", "price"]]
    frame = feast_store.training_frame(store.repo_path, entities, store.feature_view)
    assert frame["listing_id"].tolist() == entities["listing_id"].tolist()
    assert frame["price"].tolist() == entities["price"].tolist()
    assert compare_with_table(frame, table) == []
    # A changed value would be caught: the check is not vacuous.
    tampered = table.copy()
    tampered.loc[0, "mileage"] += 1
    assert compare_with_table(frame, tampered) == ["mileage: 1 row(s) differ"]
    # Feast keeps its registry; nothing is materialised into the (empty) online store.
    feast = yaml.safe_load((store.repo_path / "feature_store.yaml").read_text(encoding="utf-8"))
    assert (store.repo_path / feast["registry"]["path"]).is_file()
    online = store.repo_path / feast["online_store"]["path"]
    with contextlib.closing(sqlite3.connect(online)) as db:
        rows = db.execute("select count(*) from car_price_car_features").fetchone()
    assert rows == (0,)


@pytest.mark.slow
def test_split_needs_no_registry_left_by_another_step(workdir: Path) -> None:
    """Split applies the Feast repo itself: it runs with no Feast registry on disk."""
    params = str(workdir / "params.yaml")
    write_raw(workdir / "raw", synthetic_2020(60), synthetic_2022(3))
    for step in ("ingest", "features", "split"):
        assert main(["--params", params, step]) == 0, step
    summary = splits.read_summary(_paths(workdir).splits)
    assert summary.source == "autoru_2020_moscow"
    assert summary.train.rows + summary.val.rows + summary.test.rows == 60


@pytest.mark.slow
def test_feast_source_must_be_the_features_path(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A params file whose paths.features the Feast repo does not read is an error."""
    params = workdir / "params.yaml"
    elsewhere = workdir / "elsewhere.yaml"
    elsewhere.write_text(
        params.read_text(encoding="utf-8").replace("data/features", "data/elsewhere"), "utf-8"
    )
    for step in ("ingest", "features"):
        assert main(["--params", str(elsewhere), step]) == 0, step
    # The repo reads the params.yaml beside it, whose features path is data/features.
    assert main(["--params", str(elsewhere), "feature-store"]) == 1
    err = capsys.readouterr().err
    assert "data/features/cars.parquet, but paths.features is" in err
    assert "data/elsewhere/cars.parquet" in err
    assert not _paths(workdir).feature_store_report.exists()


def test_outputs_are_readable_by_others(workdir: Path) -> None:
    """Written files are world-readable (a non-root server container reads the bundle)."""
    assert _ingest(workdir) == 0
    for path in _outputs(workdir):
        assert path.stat().st_mode & 0o777 == 0o644, path
