"""The retrain's recency weights with the market index in place, decided on validation rows.

`python -m studies.market_clock.half_life [--half-lives 90 180 720 100000]` in a trained
project (`make train`), before the retrain's holdout is scored by anything: for each half-life
the retrain's challenger is fitted as `car-train retrain` fits it (the same rows, the
champion's levels to deflate by, `training.core.fitting.fit_pipeline`), nothing registered,
and scored on validation rows only, each at its own period's level of the challenger's index:

- the new market's validation rows (the retrain's calibration rows);
- the 2020 validation split, beside the champion's figure on the same rows.

The holdout is not read beyond what `read_slices` needs to leave it out. Both sets also stop
the booster (and the first calibrates the scale), so the figures are optimistic alike for
every candidate: fit for choosing between them, not as a forecast. Figures only (no rows) go to
`studies/market_clock/results/half_life.json`.
"""

import argparse
import json
import sys
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from training.config import load_params
from training.core.fitting import fit_pipeline
from training.core.market_index import levels_of, period_of
from training.core.metrics import regression_metrics
from training.core.retrain import recency_weights
from training.io import onnx_scoring, registry, retrain_data, tuned_params
from training.io.mlflow_service import MlflowService
from training.jobs.retrain import challenger_market

OUT = Path(__file__).parent / "results" / "half_life.json"


def main(argv: list[str] | None = None) -> int:
    """Fit one challenger per half-life; print and write the validation figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--half-lives", type=float, nargs="+", default=[90, 180, 720, 100_000])
    args = parser.parse_args(argv)
    params = load_params(Path("params.yaml"))
    service = MlflowService.from_params(params.registry)
    name = params.registry.model_name
    labels, older, newest = retrain_data.read_slices(params)
    rows = retrain_data.assemble(params, labels, older, newest)
    times = labels.set_index("listing_id")["event_timestamp"]
    champion = registry.version_by_alias(service, name, registry.CHAMPION)
    market = challenger_market(params, service, champion, rows, times)
    is_2020 = ~rows.val["listing_id"].isin(rows.calibration["listing_id"])
    val_2020 = rows.val.loc[is_2020]
    model_bytes, manifest = registry.fetch_bundle(service, champion)
    period_2020 = retrain_data.one_period(times, val_2020, "the 2020 validation split")
    champion_2020 = _mape(val_2020, onnx_scoring.price_at(model_bytes, manifest, val_2020))
    lightgbm = msgspec.to_builtins(tuned_params.booster_params(params))
    train_times = times.reindex(rows.train["listing_id"]).reset_index(drop=True)
    val_times = times.reindex(rows.val["listing_id"]).reset_index(drop=True)
    newest_train = train_times.max()
    results = []
    for half_life in args.half_lives:
        weights = (
            recency_weights(train_times, newest_train, half_life),
            recency_weights(val_times, newest_train, half_life),
        )
        pipeline, history = fit_pipeline(
            rows.train,
            rows.val,
            params.train,
            lightgbm,
            calibration=rows.calibration,
            weights=weights,
            market=market,
        )
        assert pipeline.market is not None
        index = levels_of(pipeline.market)
        periods = period_of(times.reindex(rows.calibration["listing_id"]).reset_index(drop=True))
        new = np.exp(pipeline.predict_relative_log(rows.calibration) + index.of(periods))
        old = np.exp(
            pipeline.predict_relative_log(val_2020) + pipeline.market.level_of(period_2020)
        )
        result = {
            "half_life_days": half_life,
            "best_iteration": history.best_iteration,
            "val_new_market_mape": _mape(rows.calibration, new),
            "val_2020_mape": _mape(val_2020, old),
            "val_2020_vs_champion": _mape(val_2020, old) / champion_2020,
            "levels": dict(zip(index.periods, index.levels, strict=True)),
            "served_level": pipeline.market.served_level,
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "champion_version": str(champion.version),
        "champion_val_2020_mape": champion_2020,
        "val_new_market_rows": len(rows.calibration),
        "val_2020_rows": len(val_2020),
        "candidates": results,
    }
    OUT.write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    return 0


def _mape(frame: pd.DataFrame, price: np.ndarray) -> float:
    return regression_metrics(frame["price"].to_numpy(np.float64), price)["mape"]


if __name__ == "__main__":
    sys.exit(main())
