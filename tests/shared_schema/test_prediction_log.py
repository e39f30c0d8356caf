"""The prediction log contract: record round trip, segment names, and a reader that counts skips."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared_schema import SCHEMA_VERSION, Car
from shared_schema.prediction_log import (
    CUT_LINE,
    FORMAT_VERSION,
    INVALID_RECORD,
    LOG_FORMAT,
    MALFORMED,
    OPEN_SUFFIX,
    SCHEMA_VERSION_SKIP,
    PredictionLogRead,
    PredictionRecord,
    encode_records,
    read_prediction_log,
    segment_name,
    segment_paths,
)

T0 = datetime(2026, 11, 27, 10, 15, 3, 123456, tzinfo=UTC)


def make_records(car: Car, count: int, start: datetime = T0) -> list[PredictionRecord]:
    return [
        PredictionRecord(
            log_format=LOG_FORMAT,
            ts=start + timedelta(seconds=index),
            request_id=f"req{index // 2}",
            row=index % 2,
            model_version="7",
            schema_version=SCHEMA_VERSION,
            price_rub=1_000_000.0 + index,
            car=car,
        )
        for index in range(count)
    ]


@pytest.fixture
def car(car_payload: dict[str, Any]) -> Car:
    return msgspec.convert(car_payload, Car)


def raw_line(record: PredictionRecord, **changes: Any) -> bytes:
    """A record's line with top-level keys replaced (None deletes), as a foreign writer's."""
    raw: dict[str, Any] = msgspec.to_builtins(record)
    for key, value in changes.items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value
    return msgspec.json.encode(raw) + b"\n"


def accounted(read: PredictionLogRead) -> int:
    return len(read.records) + read.outside_window + sum(read.skipped.values())


def test_records_round_trip_through_a_segment(tmp_path: Path, car: Car) -> None:
    """What the writer encodes, the reader decodes to equal records, one line each."""
    records = make_records(car, 5)
    data = encode_records(records)
    assert data.count(b"\n") == 5
    assert data.startswith(b'{"log_format":1,"ts":"2026-11-27T10:15:03.123456Z","request_id"')
    path = tmp_path / "predictions-x.jsonl"
    path.write_bytes(data)
    read = read_prediction_log(path)
    assert read.records == records
    assert (read.lines, read.skipped, read.files) == (5, {}, [str(path)])


def test_records_handed_over_per_file_are_not_kept(tmp_path: Path, car: Car) -> None:
    """With on_records, each file's records in the window go to it in order; none are kept."""
    records = make_records(car, 5)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(encode_records(records[:3]) + b"not json\n")
    second.write_bytes(encode_records(records[3:]))
    handed: list[list[PredictionRecord]] = []
    read = read_prediction_log([first, second], until=records[4].ts, on_records=handed.append)
    assert handed == [records[:3], records[3:4]]
    assert read.records == []
    assert (read.lines, read.outside_window, read.skipped) == (6, 1, {MALFORMED: 1})


def test_a_newline_inside_a_value_stays_inside_its_line(tmp_path: Path, car: Car) -> None:
    """Lines split on newline bytes exactly: a newline in a string field is escaped."""
    # Car's categorical strings refuse control characters, so the newline is in another field.
    records = [
        msgspec.structs.replace(record, model_version="7\nbeta") for record in make_records(car, 2)
    ]
    path = tmp_path / "a.jsonl"
    path.write_bytes(encode_records(records))
    assert read_prediction_log(path).records == records


def test_a_segment_cut_mid_line_counts_one_cut_line(tmp_path: Path, car: Car) -> None:
    """A crash's cut last line is a named, counted skip; the whole lines before it are read."""
    data = encode_records(make_records(car, 3))
    path = tmp_path / "cut.jsonl"
    path.write_bytes(data[: len(data) - 40])
    read = read_prediction_log(path)
    assert len(read.records) == 2
    assert read.skipped == {CUT_LINE: 1}
    assert read.first_skip[CUT_LINE].startswith(f"{path}:3: ")
    assert accounted(read) == read.lines == 3


def test_a_last_line_without_newline_that_parses_is_a_record(tmp_path: Path, car: Car) -> None:
    """Only a last line that fails to parse is cut: a whole record missing its newline is read."""
    path = tmp_path / "no-newline.jsonl"
    path.write_bytes(encode_records(make_records(car, 2)).rstrip(b"\n"))
    read = read_prediction_log(path)
    assert (len(read.records), read.skipped) == (2, {})


def test_each_bad_line_is_skipped_under_its_reason(tmp_path: Path, car: Car) -> None:
    """Garbage, other formats, other schemas, broken records: each counted under its reason."""
    good = make_records(car, 3)
    newer_car = {**msgspec.to_builtins(car), "seats": 5}
    lines = [
        encode_records(good[:1]),
        b"not json at all\n",
        b"[1, 2, 3]\n",
        raw_line(good[0], log_format=2),
        raw_line(good[0], log_format=None),
        raw_line(good[0], log_format=2, car=None, price="1"),  # a layout we do not know
        raw_line(good[0], schema_version="2.0.0"),
        raw_line(good[0], schema_version="1.99.0", car=newer_car),
        raw_line(good[0], car={**msgspec.to_builtins(car), "mileage": -1}),
        raw_line(good[0], request_id=None),
        encode_records(good[1:]),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(lines))
    read = read_prediction_log(path)
    assert read.records == good
    assert read.skipped == {
        MALFORMED: 2,
        FORMAT_VERSION: 3,
        SCHEMA_VERSION_SKIP: 2,
        INVALID_RECORD: 2,
    }
    assert read.first_skip[MALFORMED].startswith(f"{path}:2: ")
    assert "log_format 2" in read.first_skip[FORMAT_VERSION]
    assert "major versions differ" in read.first_skip[SCHEMA_VERSION_SKIP]
    assert "mileage" in read.first_skip[INVALID_RECORD]
    assert accounted(read) == read.lines == 12


def test_the_window_keeps_since_inclusive_until_exclusive(tmp_path: Path, car: Car) -> None:
    """Records outside [since, until) are counted apart, not as skips."""
    path = tmp_path / "w.jsonl"
    path.write_bytes(encode_records(make_records(car, 10)))
    read = read_prediction_log(
        path, since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=5)
    )
    assert [record.price_rub for record in read.records] == [1_000_002.0, 1_000_003.0, 1_000_004.0]
    assert (read.outside_window, read.skipped) == (7, {})


def test_segment_names_sort_by_start_and_open_ones_are_optional(tmp_path: Path, car: Car) -> None:
    """A directory lists its segments by start time; `.open` ones only when asked for."""
    late = segment_name(T0 + timedelta(hours=1), "12-abcdef", 1)
    early = segment_name(T0, "99-012345", 7)
    assert early == "predictions-20261127T101503Z-99-012345-000007.jsonl"
    open_one = segment_name(T0 + timedelta(minutes=1), "12-abcdef", 2) + OPEN_SUFFIX
    for name in (late, early, open_one, "unrelated.jsonl"):
        (tmp_path / name).write_bytes(encode_records(make_records(car, 1)))
    assert [path.name for path in segment_paths(tmp_path)] == [early, open_one, late]
    assert [path.name for path in segment_paths(tmp_path, include_open=False)] == [early, late]
    read = read_prediction_log(tmp_path)
    assert (len(read.records), len(read.files)) == (3, 3)


def test_an_open_segment_closed_while_listing_is_read_once(tmp_path: Path, car: Car) -> None:
    """An `.open` file renamed to its closed name between listing and reading is read there."""
    closed = tmp_path / segment_name(T0, "1-aaaaaa", 1)
    closed.write_bytes(encode_records(make_records(car, 2)))
    gone = closed.with_name(closed.name + OPEN_SUFFIX)
    read = read_prediction_log([gone])
    assert (len(read.records), read.files) == (2, [str(closed)])
    assert len(read_prediction_log([closed, gone]).records) == 2
