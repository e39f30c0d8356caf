"""`car-train replay`: post listings to a running server, one car per request (drift demo).

Each listing's `listing_id` is its request id, so the server's prediction log joins to the
listings' asking prices. Prints the replay's summary as JSON; fails unless every listing was
answered 200 (a 503 is retried after its Retry-After).
"""

import logging
import sys
from pathlib import Path

import msgspec

from shared_schema import FIELD_NAMES
from training.config import Params
from training.errors import PipelineError
from training.io import files, replay

log = logging.getLogger(__name__)


def run(
    params: Params,
    *,
    url: str,
    cars: str | Path,
    source: str | None = None,
    limit: int | None = None,
    threads: int = 4,
    shuffle: int | None = None,
) -> replay.ReplaySummary:
    """Replay the listings of `cars` (a parquet with `listing_id` and the `Car` fields).

    Args:
        params: The pipeline's parameters (unused: the replay has none of its own).
        url: The server's base URL.
        cars: The listings file, e.g. the test split or `paths.features`.
        source: Only the listings of this `source` column value.
        limit: Only the first `limit` listings (in file order).
        threads: Concurrent connections.
        shuffle: Send the listings in an order shuffled with this seed, not in file order: a
            file sorted by brand or date would make each chunk of the log window one segment.

    Raises:
        PipelineError: The file lacks a column or has no listings; a listing was not answered 200.
    """
    del params
    required = ("listing_id", *FIELD_NAMES)
    frame = files.read_parquet(Path(cars), "listings to replay", "car-train split", required)
    if source is not None:
        if "source" not in frame.columns:
            raise PipelineError(f"{cars}: no `source` column to select {source!r} from")
        frame = frame.loc[frame["source"] == source]
    frame = frame.head(limit) if limit is not None else frame
    if shuffle is not None:
        frame = frame.sample(frac=1.0, random_state=shuffle)
    if frame.empty:
        raise PipelineError(f"{cars}: no listings to replay (source {source!r})")
    summary = replay.replay(url, replay.car_bodies(frame), threads)
    sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
    answered = summary.statuses.get("200", 0)
    log.info(
        "replayed %d listings in %.1f s: %d answered 200", summary.sent, summary.seconds, answered
    )
    if answered != summary.sent:
        raise PipelineError(
            f"replay: {summary.sent - answered} of {summary.sent} listings not answered 200 "
            f"(statuses {summary.statuses}, {summary.transport_errors} transport errors); "
            f"first: {summary.first_error}"
        )
    return summary
