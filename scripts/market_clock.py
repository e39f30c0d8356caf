"""The market clock's figures in `make drift-demo`: the baseline, the table, the index plot.

The demo (`scripts.drift_demo`) runs `car-train refresh-level` and `car-train retrain` on the
real data; this measures the simplest outside baseline on the same rows (the 2020 champion's
prices times one scalar), sets the four side by side, and draws the indices' levels.
"""

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from shared_schema.bundle import MANIFEST_FILE, VerifiedBundle, decode_manifest
from shared_schema.market import MarketIndex
from training.config import Params
from training.core.retrain import newest_slice
from training.io import onnx_scoring, plots


def one_scalar(champion: VerifiedBundle, listings: Path, holdout: Path) -> dict[str, float]:
    """The simplest outside baseline: the 2020 champion's prices times one scalar.

    The scalar is the median asking/predicted ratio on the new market's older listings (every
    labelled one outside the holdout); its MAPE is measured on the holdout.
    """
    rows = pd.read_parquet(listings)
    newest = pd.read_parquet(holdout)
    is_new = rows["listing_id"].isin(newest["listing_id"])

    def priced(frame: pd.DataFrame) -> np.ndarray:
        feeds = onnx_scoring.frame_feeds(frame, champion.manifest.inputs)
        return onnx_scoring.run_graph(champion.model_bytes, feeds).astype(np.float64)

    older = rows.loc[~is_new]
    scalar = float(np.median(older["price"].to_numpy(np.float64) / priced(older)))
    price = newest["price"].to_numpy(np.float64)
    mape = float(np.mean(np.abs(priced(newest) * scalar - price) / price))
    return {"scalar": scalar, "older_rows": len(older), "holdout_mape": mape}


def table(results: dict[str, Any]) -> str:
    """The market clock's figures on the retrain's holdout, side by side, as Markdown.

    Every row is the same newest slice of the new market; the 2020 test split is scored at
    2020's level of each model's own index (the one-scalar baseline leaves 2020 prices as the
    champion's).
    """
    refresh, retrain, scalar = results["refresh"], results["retrain"], results["one_scalar"]
    champion = refresh["champion"]
    old_2020 = champion["test_2020_mape"]
    rows = [
        ("2020 champion", champion["holdout_mape"], old_2020, "-"),
        (
            f"one scalar (x{scalar['scalar']:.3f}, median ratio on {scalar['older_rows']} older)",
            scalar["holdout_mape"],
            old_2020,
            "-",
        ),
        (
            f"refresh-level (level x{np.exp(refresh['level'] - refresh['parent_level']):.3f}, "
            f"{refresh['window_rows']} rows)",
            refresh["challenger"]["holdout_mape"],
            refresh["challenger"]["test_2020_mape"],
            "promoted" if refresh["promote"] else "refused",
        ),
        (
            f"retrain with the index (half-life {retrain['half_life_days']:g} d)",
            retrain["challenger"]["holdout_mape"],
            retrain["challenger"]["test_2020_mape"],
            "promoted" if retrain["promote"] else "refused",
        ),
    ]
    lines = [
        f"market clock: {refresh['holdout_rows']} newest {results['source']} listings "
        f"(from {refresh['holdout_from']}); 2020 test at {refresh['test_2020_period']}'s level; "
        f"gate tolerance on 2020 {retrain['old_market_tolerance']:g}",
        "",
        "| model | holdout MAPE | 2020 test MAPE | 2020 vs champion | gate |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {name} | {new:.4f} | {old:.4f} | {old / old_2020:.3f}x | {gate} |"
        for name, new, old, gate in rows
    ]
    lines.append(f"\nrefresh: {refresh['reason']}")
    return "\n".join(lines)


def indices(root: Path, params: Params) -> dict[str, Any]:
    """The refreshed and the retrained bundles' indices (levels and dates only), as JSON data."""
    paths = params.paths
    found = {}
    for name, bundle in (("refresh", paths.refresh_bundle), ("retrain", paths.retrain_bundle)):
        manifest = decode_manifest((root / bundle / MANIFEST_FILE).read_bytes())
        found[name] = msgspec.to_builtins(manifest.market)
    return found


def plot(found: dict[str, Any], path: Path) -> Path:
    """The indices' levels by day relative to 2020's (their first period), as a PNG."""
    decoded = {name: msgspec.convert(index, MarketIndex) for name, index in found.items()}
    base = min(index.periods[0] for index in decoded.values())
    return plots.market_index(decoded, base, path)


def by_day(root: Path, params: Params, versions: dict[str, str]) -> str:
    """Each registered version's holdout MAPE per day of the holdout, as Markdown.

    The newest day of the 2022 scrape holds only brands no older listing has: this shows
    whether a figure holds there too. The one-scalar baseline is the first version (the 2020
    champion) times the median asking/predicted ratio of the older listings.
    """
    from training.io import registry
    from training.io.mlflow_service import MlflowService

    service = MlflowService.from_params(params.registry)
    labels = pd.read_parquet(root / params.paths.labels)
    new = labels.loc[labels["source"] == params.retrain.source]
    _, newest = newest_slice(new, params.retrain.holdout_fraction)
    listings = pd.read_parquet(
        root / params.paths.drift / f"demo-{params.retrain.source}.parquet"
    ).drop(columns="price")
    holdout = newest.merge(listings, on="listing_id", validate="one_to_one")
    older = new.loc[~new["listing_id"].isin(newest["listing_id"])].merge(
        listings, on="listing_id", validate="one_to_one"
    )
    days = holdout["event_timestamp"].dt.strftime("%Y-%m-%d")
    price = holdout["price"].to_numpy(np.float64)
    rows: dict[str, np.ndarray] = {}
    for name, number in versions.items():
        version = registry.require_version(service, params.registry.model_name, number)
        model_bytes, manifest = registry.fetch_bundle(service, version)
        rows[name] = onnx_scoring.price_at(model_bytes, manifest, holdout)
        if len(rows) == 1:  # the 2020 champion: the baseline scales its prices
            ratio = older["price"].to_numpy(np.float64) / onnx_scoring.price_at(
                model_bytes, manifest, older
            )
            rows["one scalar"] = rows[name] * float(np.median(ratio))
    lines = [
        "| model | "
        + " | ".join(f"{d} ({(days == d).sum()} rows)" for d in sorted(set(days)))
        + " | all |",
        "|---|" + "---:|" * (days.nunique() + 1),
    ]
    for name, predicted in rows.items():
        ape = np.abs(predicted - price) / price
        cells = [f"{ape[(days == d).to_numpy()].mean():.4f}" for d in sorted(set(days))]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ape.mean():.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m scripts.market_clock NAME=VERSION ...`: `by_day` after `make drift-demo`."""
    import argparse

    from training.config import load_params

    parser = argparse.ArgumentParser(description="Holdout MAPE per day of registered versions.")
    parser.add_argument(
        "versions", nargs="+", help="name=registry version, the 2020 champion first"
    )
    args = parser.parse_args(argv)
    root = Path()
    params = load_params(root / "params.yaml")
    versions = dict(item.split("=", 1) for item in args.versions)
    print(by_day(root, params, versions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
