"""The prediction log, defined once: its record, its files and the one reader of both.

The server (`inference.prediction_log`) writes it; the drift job and people read it. Nothing
here needs the server's code: the format is JSON lines, readable with any JSON tool.

Files. Each server worker writes its own segments into `PREDICTION_LOG_DIR`, named
`predictions-<start>-<worker>-<seq>.jsonl`: `<start>` is the UTC time the segment was opened
(`20261127T101503Z`), `<worker>` the writing process (`<pid>-<6 random hex>`, so workers and
restarts never share a file), `<seq>` the worker's segment counter (6 digits). Sorting names
sorts segments by start time. A segment is written as `<name>.open` and renamed to `<name>`
when it is closed (by size, by age, or at shutdown); a closed segment is never written again.
An `.open` file is either being written now or was left by a crash; its last line may be cut.

Lines. UTF-8, one `PredictionRecord` per line as a JSON object ended by a newline, keys in the
order below. Readers ignore keys they do not know; a change of meaning bumps
`LOG_FORMAT`.

Versions. `log_format` is the version of this record layout (`LOG_FORMAT`); `schema_version`
is the `Car` schema the car was decoded with; a reader takes a record when its `log_format` is
its own and its schema version passes `shared_schema.bundle.schema_version_refusal` (same major,
minor not newer).
"""

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from shared_schema.bundle import schema_version_refusal
from shared_schema.car import SCHEMA_VERSION, Car
from shared_schema.rating import AskingPrice, Rating

#: Version of the record layout below; a reader skips records of any other.
LOG_FORMAT: Final = 1

SEGMENT_PREFIX: Final = "predictions-"
SEGMENT_SUFFIX: Final = ".jsonl"
#: Appended to a segment's name while it is written; dropped by the rename that closes it.
OPEN_SUFFIX: Final = ".open"
#: `datetime.strftime` format of `<start>` in segment names.
SEGMENT_TIME_FORMAT: Final = "%Y%m%dT%H%M%SZ"

#: The HTTP header carrying a request's id: the client's (the replay sends the listing id), the
#: server's answer, and the `request_id` a record is joined to its label by.
REQUEST_ID_HEADER: Final = "X-Request-ID"
#: Request ids the server accepts from `REQUEST_ID_HEADER` and writes: letters, digits, `._:-`.
REQUEST_ID_PATTERN: Final = r"^[A-Za-z0-9._:\-]{1,64}$"

# Why a reader skipped a line (keys of `PredictionLogRead.skipped`).
#: The last line of a segment, without its newline, that does not parse: a write cut by a crash
#: (or, in an `.open` segment, still in progress).
CUT_LINE: Final = "cut_line"
#: A line that is not one JSON object, anywhere but at the cut end of a segment.
MALFORMED: Final = "malformed"
#: A record whose `log_format` is not `LOG_FORMAT` (or missing).
FORMAT_VERSION: Final = "format_version"
#: A record whose car schema version this reader must not read (`schema_version_refusal`).
SCHEMA_VERSION_SKIP: Final = "schema_version"
#: A record of the right versions that breaks the layout (a field missing, out of range).
INVALID_RECORD: Final = "invalid_record"
SKIP_REASONS: Final = (CUT_LINE, MALFORMED, FORMAT_VERSION, SCHEMA_VERSION_SKIP, INVALID_RECORD)


class PredictionRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One answered car: a line of the prediction log.

    Attributes:
        log_format: Version of this layout, `LOG_FORMAT` when written.
        ts: When the price was answered, UTC, ISO 8601 with microseconds
            (`2026-11-27T10:15:03.123456Z`).
        request_id: The request's id, also returned in its `X-Request-ID` response header: the
            client's own when it sent a valid one, else 32 random hex digits.
        row: Index of the car in the request: 0 for `/predict`, its position in `cars` for
            `/predict/batch`.
        model_version: The manifest's `model_version` of the model that priced the car.
        schema_version: `SCHEMA_VERSION` of the server that decoded the car.
        price_rub: The answered price in RUB.
        car: The car as the client sent it, every `Car` field (missing optional ones as null).
        asking_price_rub: The asking price sent with the car; absent when none was.
        rating: The asking price's band (`shared_schema.rating`); absent when it was not rated
            (no asking price, or a model without an interval).
        challenger_version: The challenger's `model_version` when the request was shadowed
            (scored by the challenger too, after the answer); else absent.
        challenger_price_rub: The challenger's price for the same car then; else absent.
    """

    log_format: int
    ts: Annotated[datetime, Meta(tz=True)]
    request_id: Annotated[str, Meta(pattern=REQUEST_ID_PATTERN)]
    row: Annotated[int, Meta(ge=0)]
    model_version: Annotated[str, Meta(min_length=1)]
    schema_version: Annotated[str, Meta(pattern=r"^\d+\.\d+\.\d+$")]
    price_rub: float
    car: Car
    # Added in log format 1 with defaults, left out of a line when unset: lines without them
    # (older ones too) read as before, and older readers ignore them.
    asking_price_rub: AskingPrice | None = None
    rating: Rating | None = None
    challenger_version: Annotated[str, Meta(min_length=1)] | None = None
    challenger_price_rub: float | None = None


class _Envelope(msgspec.Struct):
    """Just the versions of a record, to name why a line that is JSON did not decode."""

    log_format: int | None = None
    schema_version: Annotated[str, Meta(pattern=r"^\d+\.\d+\.\d+$")] | None = None


class PredictionLogRead(msgspec.Struct, frozen=True, kw_only=True):
    """What `read_prediction_log` found: the records and every line it did not take, counted.

    `lines == len(records) + outside_window + sum(skipped.values())`.

    Attributes:
        records: The readable records in the window, in file order then line order (not sorted
            by `ts` across files); empty when they were handed to `on_records` instead.
        skipped: Lines not taken, per reason (`SKIP_REASONS`); reasons that did not occur are
            absent.
        first_skip: Per reason, where it first occurred and why: `"<file>:<line>: <message>"`.
        files: The files read, in order.
        lines: Lines read in all files.
        outside_window: Readable records outside `since`/`until` (not skips).
    """

    records: list[PredictionRecord]
    skipped: dict[str, int]
    first_skip: dict[str, str]
    files: list[str]
    lines: int
    outside_window: int


_encoder: Final = msgspec.json.Encoder()
_record_decoder: Final = msgspec.json.Decoder(PredictionRecord)
_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)


def segment_name(started: datetime, worker: str, sequence: int) -> str:
    """A closed segment's file name (see the module docstring); the open one adds `OPEN_SUFFIX`.

    Args:
        started: When the segment was opened, timezone-aware.
        worker: The writing process's id, unique among the writers of one directory.
        sequence: The worker's segment counter.
    """
    start = started.strftime(SEGMENT_TIME_FORMAT)
    return f"{SEGMENT_PREFIX}{start}-{worker}-{sequence:06d}{SEGMENT_SUFFIX}"


def encode_records(records: Iterable[PredictionRecord]) -> bytes:
    """The records as log lines, each one JSON object and a newline.

    msgspec escapes newlines inside strings, so the lines split on newline bytes exactly.
    """
    return _encoder.encode_lines(records)


def segment_paths(directory: Path, *, include_open: bool = True) -> list[Path]:
    """The segments in a log directory, sorted by name (start time first).

    Args:
        directory: A `PREDICTION_LOG_DIR`.
        include_open: Also list `.open` segments (being written, or left by a crash).
    """
    patterns = [f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"]
    if include_open:
        patterns.append(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}{OPEN_SUFFIX}")
    return sorted({path for pattern in patterns for path in directory.glob(pattern)})


def read_prediction_log(
    source: Path | Sequence[Path],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    include_open: bool = True,
    reader_version: str = SCHEMA_VERSION,
    on_records: Callable[[list[PredictionRecord]], None] | None = None,
) -> PredictionLogRead:
    """Read the prediction log; every line is taken, outside the window, or a counted skip.

    Nothing is dropped silently: `PredictionLogRead.skipped` names each line not taken.

    Args:
        source: A log directory (its segments, see `segment_paths`), or files to read in order.
        since: Keep records with `ts >= since` (timezone-aware); None: no lower bound.
        until: Keep records with `ts < until` (timezone-aware); None: no upper bound.
        include_open: With a directory, also read `.open` segments. A crash leaves its last
            segment open, so leaving them out loses its records; reading a segment being
            written may count its unfinished last line as `cut_line`.
        reader_version: The `Car` schema version to read as (this package's by default).
        on_records: Called with each file's records in the window, in order, which are then
            not kept: a reader that stores them compactly holds one file's records at a time
            rather than the whole log's (a record object is ~1 KB; a day of traffic is
            millions).

    Returns:
        The records in the window (none with `on_records`) and the accounting of every other
        line.

    Raises:
        OSError: A file cannot be read (other than an `.open` segment renamed meanwhile, which
            is read under its closed name).
    """
    if isinstance(source, Path) and source.is_dir():
        paths = segment_paths(source, include_open=include_open)
    else:
        paths = [source] if isinstance(source, Path) else list(source)
    state = _ReadState(since, until, reader_version)
    listed = set(paths)
    for path in paths:
        segment = _read_segment(path, listed)
        if segment is not None:
            state.read_file(*segment)
        if on_records is not None:
            on_records(state.records)
            state.records = []
    return PredictionLogRead(
        records=state.records,
        skipped=state.skipped,
        first_skip=state.first_skip,
        files=state.files,
        lines=state.lines,
        outside_window=state.outside_window,
    )


def _read_segment(path: Path, listed: set[Path]) -> tuple[str, bytes] | None:
    try:
        return str(path), path.read_bytes()
    except FileNotFoundError:
        # An `.open` segment closed between listing and reading: read it under its new name,
        # unless that name is listed too (then it is read there).
        closed = path.with_name(path.name.removesuffix(OPEN_SUFFIX))
        if closed == path:
            raise
        return None if closed in listed else (str(closed), closed.read_bytes())


class _ReadState:
    def __init__(self, since: datetime | None, until: datetime | None, reader: str) -> None:
        self.since = since
        self.until = until
        self.reader = reader
        self.records: list[PredictionRecord] = []
        self.skipped: dict[str, int] = {}
        self.first_skip: dict[str, str] = {}
        self.files: list[str] = []
        self.lines = 0
        self.outside_window = 0

    def read_file(self, name: str, data: bytes) -> None:
        self.files.append(name)
        lines = data.split(b"\n")
        complete = len(lines) - 1  # the part after the last newline is not a whole line
        if not lines[-1]:
            lines.pop()
        for number, line in enumerate(lines, start=1):
            self.lines += 1
            where = f"{name}:{number}"
            try:
                record = _record_decoder.decode(line)
            except msgspec.ValidationError as error:  # JSON, but not a record of this layout
                self._skip(*self._why_invalid(line, str(error)), where)
                continue
            except msgspec.DecodeError as error:
                # The one line a crash can cut is the last, and it then lacks its newline.
                self._skip(CUT_LINE if number > complete else MALFORMED, str(error), where)
                continue
            refusal = self._refusal(record.log_format, record.schema_version)
            if refusal is not None:
                self._skip(*refusal, where)
            elif (self.since is not None and record.ts < self.since) or (
                self.until is not None and record.ts >= self.until
            ):
                self.outside_window += 1
            else:
                self.records.append(record)

    def _why_invalid(self, line: bytes, message: str) -> tuple[str, str]:
        try:
            envelope = _envelope_decoder.decode(line)
        except msgspec.DecodeError:  # not an object, or versions of the wrong type
            return MALFORMED, message
        refusal = self._refusal(envelope.log_format, envelope.schema_version)
        return refusal or (INVALID_RECORD, message)

    def _refusal(
        self, log_format: int | None, schema_version: str | None
    ) -> tuple[str, str] | None:
        if log_format != LOG_FORMAT:
            return FORMAT_VERSION, f"log_format {log_format}, this reader reads {LOG_FORMAT}"
        if schema_version is None:
            return None
        refusal = schema_version_refusal(schema_version, self.reader)
        return None if refusal is None else (SCHEMA_VERSION_SKIP, refusal)

    def _skip(self, reason: str, message: str, where: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.first_skip.setdefault(reason, f"{where}: {message}")


__all__ = [
    "CUT_LINE",
    "FORMAT_VERSION",
    "INVALID_RECORD",
    "LOG_FORMAT",
    "MALFORMED",
    "OPEN_SUFFIX",
    "REQUEST_ID_HEADER",
    "REQUEST_ID_PATTERN",
    "SCHEMA_VERSION_SKIP",
    "SEGMENT_PREFIX",
    "SEGMENT_SUFFIX",
    "SEGMENT_TIME_FORMAT",
    "SKIP_REASONS",
    "PredictionLogRead",
    "PredictionRecord",
    "encode_records",
    "read_prediction_log",
    "segment_name",
    "segment_paths",
]
