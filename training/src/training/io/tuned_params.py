"""The booster parameters a step trains with: params.yaml's, or `tune`'s best laid over them."""

import msgspec

from training.config import LightGBMParams, Params
from training.core.tuning import with_tuned
from training.errors import PipelineError
from training.io import files
from training.records import TunedParams


def booster_params(params: Params) -> LightGBMParams:
    """`train.lightgbm`, with `paths.tuned_params` laid over it when `train.use_tuned_params`.

    Raises:
        PipelineError: The tuned file is missing or corrupt, or has an unknown key or bad
            value; the message names the file.
    """
    base = params.train.lightgbm
    if not params.train.use_tuned_params:
        return base
    path = params.paths.tuned_params
    if not path.is_file():
        raise PipelineError(
            f"{path}: tuned parameters not found; run `car-train tune` "
            "or set train.use_tuned_params: false"
        )
    tuned = files.read_record(path, TunedParams, "car-train tune")
    try:
        return with_tuned(base, tuned.params)
    except msgspec.ValidationError as exc:
        raise PipelineError(f"{path}: bad tuned parameters: {exc}") from exc
