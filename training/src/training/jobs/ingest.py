"""`car-train ingest`: both raw files → validated listings, quarantine and a report."""

import logging
from pathlib import Path

import pandas as pd

from shared_schema import CATEGORICAL_FIELDS
from training.config import IngestParams, Params
from training.core import adapters
from training.core.validation import ValidationResult, reason_counts, validate_listings
from training.errors import PipelineError
from training.io import files, raw
from training.records import IngestReport, SourceCounts

log = logging.getLogger(__name__)


def run(params: Params) -> IngestReport:
    """Ingest both sources; write listings, quarantine and the report.

    Returns:
        The ingest report (also written to `paths.ingest_report`).

    Raises:
        PipelineError: A source has more than `ingest.max_quarantined_share` of its rows
            quarantined (every such source is named; nothing is written).
    """
    paths, bounds = params.paths, params.ingest
    with files.all_or_nothing(paths.listings, paths.quarantine, paths.ingest_report):
        primary = params.data.primary_path
        frame = raw.read_csv(primary, adapters.COLUMNS_2020, CATEGORICAL_FIELDS)
        results = {
            adapters.SOURCE_2020: (primary, _validate(adapters.adapt_2020(frame), frame, bounds))
        }
        market = params.data.market_2022_path
        frame = raw.read_parquet(market, adapters.COLUMNS_2022)
        results[adapters.SOURCE_2022] = (
            market,
            _validate(adapters.adapt_2022(frame), frame, bounds),
        )

        sources = {source: _counts(path, result) for source, (path, result) in results.items()}
        limit = bounds.max_quarantined_share
        refusals = [r for s, c in sources.items() if (r := c.refusal(s, limit)) is not None]
        if refusals:
            raise PipelineError("refusing to feed training: " + " | ".join(refusals))
        listings = pd.concat([r.accepted for _, r in results.values()], ignore_index=True)
        quarantined = [q for _, r in results.values() for q in r.quarantined]
        files.write_parquet(listings, paths.listings)
        files.write_jsonl(quarantined, paths.quarantine)
        report = IngestReport(
            sources=sources,
            listings=len(listings),
            listings_sha256=files.sha256_file(paths.listings),
        )
        files.write_json(report, paths.ingest_report)
    for source, counts in report.sources.items():
        log.info(
            "%s: %d rows in, %d accepted, %d duplicates collapsed, %d quarantined",
            source,
            counts.rows_in,
            counts.accepted,
            counts.duplicates_collapsed,
            counts.quarantined,
        )
    return report


def _validate(adapted: pd.DataFrame, frame: pd.DataFrame, bounds: IngestParams) -> ValidationResult:
    return validate_listings(adapted, frame, price_min=bounds.price_min, price_max=bounds.price_max)


def _counts(path: Path, result: ValidationResult) -> SourceCounts:
    """The source's counts; every row is accepted, quarantined or a counted duplicate."""
    counts = SourceCounts(
        file=path.name,
        sha256=files.sha256_file(path),
        rows_in=result.rows_in,
        accepted=len(result.accepted),
        duplicates_collapsed=result.duplicates,
        quarantined=len(result.quarantined),
        quarantined_share=len(result.quarantined) / result.rows_in if result.rows_in else 0.0,
        quarantined_by_reason=reason_counts(result.quarantined),
    )
    total = counts.accepted + counts.duplicates_collapsed + counts.quarantined
    if total != counts.rows_in:  # pragma: no cover - a bug guard, not an input check
        msg = f"{path}: {counts.rows_in} rows in but {total} accounted for"
        raise AssertionError(msg)
    return counts
