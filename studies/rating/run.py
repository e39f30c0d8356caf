"""The price rating's bands on held-out listings: their shares, and how stable they are.

A listing's price on the 2020 test split stands in for its asking price; the exported bundle
(`paths.exported_bundle`, the pipeline's own champion candidate) prices it, and
`shared_schema.rating.rate` puts it in a band. Reported, per split (validation: the rows the
interval was calibrated on; test: never seen by training or calibration):

* the three bands' shares, with a 95 % bootstrap interval (1000 resamples of the rows);
* the shares per quintile of the predicted price, to show they hold across the market.

Beside it, the simplest outside baseline: a fixed band of ±h around the price in log space,
with h set on the validation split so that 80 % of its prices fall inside (the same nominal
coverage, one width for every car). Nothing is tuned on the test split.

Writes `studies/rating/results/rating-<date>.{json,md}`.
Run: `uv run --frozen python -m studies.rating.run` after `make train` (or `dvc repro export`).
"""

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import numpy as np

from shared_schema.rating import Rating, rate

RESULTS = Path(__file__).parent / "results"
#: The bands in their order on the price scale, from their one home.
BANDS: tuple[Rating, ...] = get_args(Rating)
QUINTILES = 5


def band_codes(price: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """0, 1, 2 per row for below, inside (bounds included), above, as `rate` decides."""
    return np.array(
        [BANDS.index(rate(p, lo, hi)) for p, lo, hi in zip(price, lower, upper, strict=True)]
    )


def shares(codes: np.ndarray) -> dict[str, float]:
    """Each band's share of the rows."""
    return {band: float(np.mean(codes == index)) for index, band in enumerate(BANDS)}


def bootstrap(codes: np.ndarray, resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Each band's 95 % bootstrap interval of its share."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(codes), size=(resamples, len(codes)))
    counts = np.stack([np.mean(codes[draws] == index, axis=1) for index in range(len(BANDS))])
    return {
        band: [float(np.percentile(counts[i], 2.5)), float(np.percentile(counts[i], 97.5))]
        for i, band in enumerate(BANDS)
    }


def by_quintile(codes: np.ndarray, predicted: np.ndarray) -> list[dict[str, float]]:
    """Band shares within each quintile of the predicted price, cheapest first."""
    edges = np.quantile(predicted, np.linspace(0, 1, QUINTILES + 1))
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, QUINTILES - 1)
    return [shares(codes[which == q]) for q in range(QUINTILES)]


def report(
    name: str, price: np.ndarray, predicted: np.ndarray, low: np.ndarray, high: np.ndarray
) -> dict[str, Any]:
    """One band definition's shares on one split: overall, bootstrap intervals, quintiles."""
    codes = band_codes(price, low, high)
    return {
        "rows": len(price),
        "shares": shares(codes),
        "ci95": bootstrap(codes),
        "by_predicted_price_quintile": by_quintile(codes, predicted),
        "band": name,
    }


def main(argv: list[str] | None = None) -> int:
    """Rate the validation and test splits with the exported bundle; write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    from shared_schema.bundle import LOWER_OUTPUT, PRICE_OUTPUT, UPPER_OUTPUT, read_verified
    from training.config import load_params
    from training.io import onnx_scoring, splits

    params = load_params(args.params)
    bundle = read_verified(params.paths.exported_bundle)
    results: dict[str, Any] = {"model_version": bundle.manifest.model_version, "splits": {}}
    half_width = None
    for split in ("val", "test"):
        frame = splits.read(params.paths.splits, split)
        feeds = onnx_scoring.frame_feeds(frame, bundle.manifest.inputs)
        predicted, low, high = (
            out.astype(np.float64).reshape(-1)
            for out in onnx_scoring.run_outputs(
                bundle.model_bytes, feeds, [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
            )
        )
        price = frame["price"].to_numpy(np.float64)
        if half_width is None:  # the baseline's width, set on validation only
            half_width = float(np.quantile(np.abs(np.log(price / predicted)), 0.8))
        fixed = predicted * np.exp(-half_width), predicted * np.exp(half_width)
        results["splits"][split] = {
            "calibrated_interval": report("calibrated", price, predicted, low, high),
            "fixed_band_baseline": report("fixed", price, predicted, *fixed),
        }
    results["baseline_half_width_log"] = half_width
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"rating-{datetime.now(UTC):%Y-%m-%d}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


def markdown(results: dict[str, Any]) -> str:
    """The shares as tables: overall with 95 % intervals, then per predicted-price quintile."""
    lines = [f"# Price rating bands on held-out listings (model {results['model_version']})", ""]
    lines += [
        f"Baseline: a fixed ±{results['baseline_half_width_log']:.3f} band in log price "
        "(80 % of validation prices inside).",
        "",
        "| split | bands | rows | below | fair | above |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for split, kinds in results["splits"].items():
        for kind, r in kinds.items():
            cells = [
                f"{r['shares'][b]:.3f} [{r['ci95'][b][0]:.3f}, {r['ci95'][b][1]:.3f}]"
                for b in BANDS
            ]
            lines.append(f"| {split} | {kind} | {r['rows']} | " + " | ".join(cells) + " |")
    lines += ["", "Per quintile of the predicted price, test split (below / fair / above):", ""]
    lines += ["| quintile | calibrated | fixed band |", "|---|---|---|"]
    test = results["splits"]["test"]
    for q in range(QUINTILES):
        cal = test["calibrated_interval"]["by_predicted_price_quintile"][q]
        fix = test["fixed_band_baseline"]["by_predicted_price_quintile"][q]
        lines.append(
            f"| {q + 1} | "
            + " / ".join(f"{cal[b]:.3f}" for b in BANDS)
            + " | "
            + " / ".join(f"{fix[b]:.3f}" for b in BANDS)
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
