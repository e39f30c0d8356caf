"""`car-train ingest`: both raw files → validated listings, quarantine and a report."""

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from shared_schema import CATEGORICAL_FIELDS
from training.config import Params
from training.core import adapters
from training.core.validation import ValidationResult, reason_counts, validate_listings
from training.io import files, raw
from training.jobs import outputs

log = logging.getLogger(__name__)

LISTINGS_FILE = "listings.parquet"
QUARANTINE_FILE = "quarantine.jsonl"
REPORT_FILE = "ingest.json"


def run(params: Params) -> dict[str, Any]:
    """Ingest both sources; write listings, quarantine and the report.

    Returns:
        The ingest report (also written to `reports_dir/ingest.json`).
    """
    data = params.data
    raw_dir = Path(data.raw_dir)
    listings_path = Path(data.interim_dir) / LISTINGS_FILE
    quarantine_path = Path(data.interim_dir) / QUARANTINE_FILE
    report_path = Path(data.reports_dir) / REPORT_FILE

    with outputs.all_or_nothing(listings_path, quarantine_path, report_path):
        results: dict[str, tuple[Path, ValidationResult]] = {}
        primary = raw_dir / data.primary_file
        frame = raw.read_csv(primary, adapters.COLUMNS_2020, CATEGORICAL_FIELDS)
        results[adapters.SOURCE_2020] = (
            primary,
            _validate(adapters.adapt_2020(frame), frame, params),
        )
        market = raw_dir / data.market_2022_file
        frame = raw.read_parquet(market, adapters.COLUMNS_2022)
        results[adapters.SOURCE_2022] = (
            market,
            _validate(adapters.adapt_2022(frame), frame, params),
        )

        listings = pd.concat([r.accepted for _, r in results.values()], ignore_index=True)
        quarantined = [q for _, r in results.values() for q in r.quarantined]
        report: dict[str, Any] = {
            "sources": {
                source: {
                    "file": path.name,
                    "sha256": files.sha256_file(path),
                    "rows_in": result.rows_in,
                    "accepted": len(result.accepted),
                    "duplicates_collapsed": result.duplicates,
                    "quarantined": len(result.quarantined),
                    "quarantined_by_reason": reason_counts(result.quarantined),
                }
                for source, (path, result) in results.items()
            },
            "listings": len(listings),
            "listings_sha256": None,
        }
        _check_accounting(report)
        files.write_parquet(listings, listings_path)
        report["listings_sha256"] = files.sha256_file(listings_path)
        files.write_jsonl(quarantined, quarantine_path)
        files.write_json(report, report_path)
    for source, counts in report["sources"].items():
        log.info(
            "%s: %d rows in, %d accepted, %d duplicates collapsed, %d quarantined",
            source,
            counts["rows_in"],
            counts["accepted"],
            counts["duplicates_collapsed"],
            counts["quarantined"],
        )
    return report


def _validate(adapted: pd.DataFrame, frame: pd.DataFrame, params: Params) -> ValidationResult:
    return validate_listings(
        adapted, frame, price_min=params.ingest.price_min, price_max=params.ingest.price_max
    )


def _check_accounting(report: dict[str, Any]) -> None:
    """Every input row is accepted, quarantined or a counted duplicate: nothing silently lost."""
    for source, counts in report["sources"].items():
        total = counts["accepted"] + counts["duplicates_collapsed"] + counts["quarantined"]
        if total != counts["rows_in"]:  # pragma: no cover - a bug guard, not an input check
            msg = f"{source}: {counts['rows_in']} rows in but {total} accounted for"
            raise AssertionError(msg)
