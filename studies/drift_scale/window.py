"""A prediction-log window of any size made of real listings, varied by a seed, with its labels.

Each record is a real listing (the pipeline's validated `listings`, both markets) drawn at
random, its mileage moved by a seeded log-normal factor (clipped to the schema's range), priced
by the served bundle as the server would have, and logged in the server's own format
(`shared_schema.prediction_log`): segments named as the server names them, each closed once it
holds the server's default segment size. Its label is the listing's asking price moved by a
smaller seeded factor, keyed by the record's request id.

Records are made in blocks of `BLOCK` with a generator seeded by (seed, block), so a window of
100k records is the first 100k of a window of 1M made with the same seed: the sizes differ in
length only. The log and the labels are derived from the real data: they go under `data/` (not
committed) or /tmp.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import msgspec
import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES, SCHEMA_VERSION, Car
from shared_schema.prediction_log import LOG_FORMAT, PredictionRecord, encode_records, segment_name

#: Records made per seeded block (also the unit of the prefix property above).
BLOCK: Final = 100_000
#: The mileage factor's log-normal sigma, and the label's (asking prices vary less).
MILEAGE_SIGMA: Final = 0.25
LABEL_SIGMA: Final = 0.05
#: The replayed traffic's rate: one record per this many milliseconds (20 requests/s).
SPACING_MS: Final = 50
MAX_MILEAGE: Final = 2_000_000
#: The writing "worker" in segment names: one per window.
WORKER: Final = "scale-000000"

Scorer = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class WindowFiles:
    """A generated window: its log directory, its labels file and what they hold."""

    log_dir: Path
    labels: Path
    records: int
    segments: int
    log_bytes: int


def write_window(
    listings: pd.DataFrame,
    out: Path,
    records: int,
    *,
    seed: int,
    score: Scorer,
    start: datetime,
    segment_bytes: int,
    model_version: str,
    block: int = BLOCK,
) -> WindowFiles:
    """Write `records` log records under `out/log` and their labels to `out/labels.parquet`.

    Args:
        listings: Real listings: the `Car` fields (valid `Car`s) and `price`.
        out: A directory that does not exist yet.
        records: Records to write (> 0).
        seed: Seeds the draw and the variation (module docstring).
        score: Prices a block's cars (the served bundle's graph).
        start: The first record's time, timezone-aware.
        segment_bytes: A segment is closed once it holds at least this many bytes.
        model_version: The version logged as having priced the records.
        block: Records per seeded block (tests make it small).

    Raises:
        ValueError: `records` < 1, `out` exists, or `listings` lack a field or `price`.
    """
    if records < 1:
        raise ValueError(f"records must be at least 1, not {records}")
    if out.exists():
        raise ValueError(f"{out}: already exists; a window is written into a new directory")
    missing = [c for c in (*FIELD_NAMES, "price") if c not in listings.columns]
    if missing:
        raise ValueError(f"listings lack the columns {missing}")
    log_dir = out / "log"
    log_dir.mkdir(parents=True)
    ids: list[np.ndarray] = []
    prices: list[np.ndarray] = []
    writer = _SegmentWriter(log_dir, segment_bytes)
    base = listings.reset_index(drop=True)
    cars = _cars(base)
    for first, picks, mileage, price in _blocks(base, records, seed, block):
        block = base.iloc[picks].reset_index(drop=True)
        block["mileage"] = mileage
        priced = np.asarray(score(block), dtype=np.float64)
        request_ids = [f"scale-{seed}-{first + i:09d}" for i in range(len(picks))]
        lines = encode_records(
            PredictionRecord(
                log_format=LOG_FORMAT,
                ts=start + timedelta(milliseconds=SPACING_MS * (first + i)),
                request_id=request_ids[i],
                row=0,
                model_version=model_version,
                schema_version=SCHEMA_VERSION,
                price_rub=float(priced[i]),
                car=msgspec.structs.replace(cars[pick], mileage=int(mileage[i])),
            )
            for i, pick in enumerate(picks)
        )
        writer.write(start + timedelta(milliseconds=SPACING_MS * first), lines)
        ids.append(np.array(request_ids))
        prices.append(price)
    writer.close()
    labels = out / "labels.parquet"
    pd.DataFrame({"request_id": np.concatenate(ids), "price": np.concatenate(prices)}).to_parquet(
        labels, index=False
    )
    return WindowFiles(log_dir, labels, records, writer.segments, writer.total_bytes)


def _cars(listings: pd.DataFrame) -> list[Car]:
    """Each listing as a `Car` (validated again: a listing the schema refuses is an error)."""
    fields = listings[list(FIELD_NAMES)].astype(object)
    rows = fields.where(fields.notna(), None).to_dict("records")
    return msgspec.convert(rows, list[Car], strict=False)


def _blocks(
    listings: pd.DataFrame, records: int, seed: int, block: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(first index, listings drawn, their mileage, their label) per block, seeded by (seed, b)."""
    for number, first in enumerate(range(0, records, block)):
        # Every block draws its full size, so a shorter last block is the start of a full one.
        size = min(block, records - first)
        rng = np.random.default_rng([seed, number])
        picks = rng.integers(0, len(listings), block)[:size]
        moved = (
            listings["mileage"].to_numpy(np.float64)[picks]
            * rng.lognormal(0.0, MILEAGE_SIGMA, block)[:size]
        )
        mileage = np.clip(np.rint(moved), 0, MAX_MILEAGE).astype(np.int64)
        label = (
            listings["price"].to_numpy(np.float64)[picks]
            * rng.lognormal(0.0, LABEL_SIGMA, block)[:size]
        )
        yield first, picks, mileage, label


class _SegmentWriter:
    """Appends whole lines to closed segments of at least `limit` bytes, named as the server's."""

    def __init__(self, directory: Path, limit: int) -> None:
        self._directory, self._limit = directory, limit
        self._lines = bytearray()
        self._started: datetime | None = None
        self.segments = self.total_bytes = 0

    def write(self, ts: datetime, lines: bytes) -> None:
        # Cut only between lines: at the first newline past the limit.
        position = 0
        while position < len(lines):
            self._started = self._started or ts
            room = self._limit - len(self._lines)
            cut = lines.find(b"\n", position + max(room - 1, 0)) + 1 or len(lines)
            self._lines += lines[position:cut]
            position = cut
            if len(self._lines) >= self._limit:
                self.close()

    def close(self) -> None:
        if not self._lines or self._started is None:
            return
        name = segment_name(self._started, WORKER, self.segments)
        (self._directory / name).write_bytes(bytes(self._lines))
        self.segments += 1
        self.total_bytes += len(self._lines)
        self._lines.clear()
        self._started = None
