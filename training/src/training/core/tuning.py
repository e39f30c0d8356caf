"""The hyper-parameter search space and how its result is laid over params.yaml. Pure."""

from typing import Any, Final

import msgspec

from training.config import LightGBMParams

#: The search space: (low, high) on a log scale; ints stay ints. `learning_rate` is not
#: searched (train sets its own; tuning runs at the faster `tune.learning_rate`).
SPACE: Final[dict[str, tuple[float, float]]] = {
    "alpha": (0.05, 0.5),
    "num_leaves": (31, 255),
    "min_child_samples": (3, 50),
    "feature_fraction": (0.4, 1.0),
    "lambda_l2": (1e-3, 30.0),
    "cat_smooth": (1.0, 50.0),
    "cat_l2": (1.0, 30.0),
    "max_cat_threshold": (16, 128),
}


def suggest(trial: Any) -> dict[str, Any]:
    """One point of the search space from an Optuna trial."""
    point: dict[str, Any] = {}
    for name, (low, high) in SPACE.items():
        if isinstance(low, int) and isinstance(high, int):
            point[name] = trial.suggest_int(name, low, high, log=True)
        else:
            point[name] = trial.suggest_float(name, low, high, log=True)
    return point


def baseline_point(base: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's values, clipped into the search space (Optuna's first trial)."""
    return {name: type(low)(min(max(base[name], low), high)) for name, (low, high) in SPACE.items()}


def with_tuned(base: LightGBMParams, tuned: dict[str, float | int]) -> LightGBMParams:
    """`base` with the tuned values laid over it.

    Raises:
        msgspec.ValidationError: A tuned key is unknown or its value out of range.
    """
    return msgspec.convert({**msgspec.to_builtins(base), **tuned}, LightGBMParams)
