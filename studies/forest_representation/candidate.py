"""A frontier candidate's pipeline on disk, for `run.py --pipeline` to measure.

Trains one candidate of `studies/frontier/candidates.toml` as the frontier study exports it
(train split, early stopping on validation, the same rounds and patience, so the same booster)
and adds what `car-train train` adds (the price scale and the interval, calibrated on the
validation split), then writes it with the pipeline's own `pipeline_files.save`:

    uv run --frozen python -m studies.forest_representation.candidate \
        "lr0.1-127, price-ordered codes" data/bench/candidates/lr0.1-price
"""

import argparse
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np

from studies.frontier.run import fit_candidate, load_candidates


def main(argv: list[str] | None = None) -> int:
    """Train the named candidate and save its pipeline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", help="a name in studies/frontier/candidates.toml")
    parser.add_argument("out", type=Path, help="directory for booster.txt and pipeline.json")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from training.config import load_params
    from training.core.intervals import fit_intervals
    from training.io import pipeline_files, splits

    candidates = load_candidates()
    if args.candidate not in candidates:
        parser.error(f"no candidate {args.candidate!r}; known: {', '.join(candidates)}")
    params = load_params(args.params)
    train, val = (splits.read(params.paths.splits, split) for split in ("train", "val"))
    fitted = fit_candidate(
        train,
        val,
        {**msgspec.to_builtins(params.train.lightgbm), **candidates[args.candidate]},
        params.train.min_category_count,
    )
    pipeline = fitted.pipeline
    price = val["price"].to_numpy(np.float64)
    interval = fit_intervals(
        pipeline.predict_log(val),
        price,
        nominal=params.train.interval.nominal,
        bins=params.train.interval.bins,
    )
    pipeline = replace(pipeline, interval=interval)
    record = pipeline_files.TrainedModel(
        vocabulary=pipeline.vocabulary.to_json(),
        log_offset=pipeline.log_offset,
        interval=interval,
        best_iteration=fitted.best_iteration,
        lightgbm={
            **fitted.booster,
            "categorical_splits": fitted.categorical_splits,
            "category_order": fitted.category_order,
        },
        val={"mape": float(np.mean(np.abs(pipeline.predict_price(val) - price) / price))},
        dataset=splits.read_summary(params.paths.splits),
    )
    pipeline_files.save(pipeline, args.out, record)
    print(f"{args.candidate}: {fitted.best_iteration} trees, saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
