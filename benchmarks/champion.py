"""The model under test, in the four forms the benchmarks need.

The ONNX bundle (what our server loads), the training-time pipeline (DataFrame in, RUB out:
what the baseline server and benchmark (b) call), the encoding that turns raw rows into the
booster's numeric matrix, and the LightGBM booster itself (benchmarks (c) and (d)).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

logger = logging.getLogger(__name__)

MODEL_DIR: Final = Path("data/model")

Encoder = Callable[[pd.DataFrame], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class Champion:
    """One model, every form of it.

    Attributes:
        label: What the results call the model (says "stand-in" for the stand-in).
        standin: Whether this is the stand-in rather than the real champion.
        bundle_dir: Directory with `model.onnx` and `manifest.json`.
        pipeline_file: Where the training-time pipeline is stored (file or directory).
        pipeline: The same pipeline, loaded: `.predict(DataFrame)` → RUB.
        encode: Raw rows → the booster's input matrix (the pipeline's preprocessing).
        booster: The LightGBM booster.
        booster_file: The booster saved as a LightGBM text model (what lleaves compiles).
        model_version: The bundle's model version.
        baseline_args: How `python -m benchmarks.baseline` loads this pipeline.
    """

    label: str
    standin: bool
    bundle_dir: Path
    pipeline_file: Path
    pipeline: Any
    encode: Encoder
    booster: Any
    booster_file: Path
    model_version: str
    baseline_args: tuple[str, ...]


def _model_version(bundle_dir: Path) -> str:
    import json

    manifest = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    return str(manifest["model_version"])


def load_standin(root: Path = Path(), bundle_dir: Path | None = None) -> Champion:
    """The stand-in champion, trained on first use (see `benchmarks.standin`).

    Args:
        root: Repository root.
        bundle_dir: A stand-in already written elsewhere (tests write a tiny one).
    """
    import joblib
    import lightgbm

    from benchmarks.standin import BOOSTER_FILE, PIPELINE_FILE, build_standin

    bundle_dir = bundle_dir or build_standin(root)
    pipeline = joblib.load(bundle_dir / PIPELINE_FILE)
    return Champion(
        label="stand-in (benchmarks.standin: LightGBM 600 trees, ordinal encoding)",
        standin=True,
        bundle_dir=bundle_dir,
        pipeline_file=bundle_dir / PIPELINE_FILE,
        pipeline=pipeline,
        encode=pipeline.encode,
        booster=lightgbm.Booster(model_file=str(bundle_dir / BOOSTER_FILE)),
        booster_file=bundle_dir / BOOSTER_FILE,
        model_version=_model_version(bundle_dir),
        baseline_args=("--pipeline", str(bundle_dir / PIPELINE_FILE)),
    )


def load_real(root: Path = Path()) -> Champion:
    """The real champion: `data/model` bundle plus the training package's own pipeline.

    Raises:
        FileNotFoundError: The pipeline has not produced the champion yet.
    """
    bundle_dir = root / MODEL_DIR
    if not (bundle_dir / "manifest.json").exists():
        raise FileNotFoundError(f"no champion bundle in {bundle_dir}: run `dvc repro`")
    try:
        from training.config import load_params
        from training.core.encoding import feature_matrix
        from training.io import pipeline_files
    except ImportError as error:
        raise FileNotFoundError(f"the training package has no pipeline loader: {error}") from error
    pipeline_dir = root / Path(load_params(str(root / "params.yaml")).train.model_dir)
    booster_file = pipeline_dir / pipeline_files.BOOSTER_FILE
    if not booster_file.exists():
        raise FileNotFoundError(f"no trained pipeline in {pipeline_dir}: run `dvc repro`")
    pipeline, _ = pipeline_files.load(pipeline_dir)
    vocabulary = pipeline.vocabulary

    def encode(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        return feature_matrix(frame, vocabulary).to_numpy(dtype=np.float64)

    version = _model_version(bundle_dir)
    return Champion(
        label=f"champion car-price {version} (data/model + {pipeline_dir})",
        standin=False,
        bundle_dir=bundle_dir,
        pipeline_file=pipeline_dir,
        pipeline=_PricePipelineAdapter(pipeline),
        encode=encode,
        booster=pipeline.booster,
        booster_file=booster_file,
        model_version=version,
        baseline_args=("--pipeline-dir", str(pipeline_dir)),
    )


class _PricePipelineAdapter:
    """The training package's `PricePipeline` behind the `.predict(frame)` the benchmarks call."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Prices in RUB."""
        return np.asarray(self.pipeline.predict_price(frame), dtype=np.float64)


def load_champion(root: Path = Path(), *, which: str = "auto") -> Champion:
    """The model to benchmark.

    Args:
        root: Repository root.
        which: "real" (the champion, or fail), "standin", or "auto" (the champion when it
            exists, else the stand-in, with a warning).

    Raises:
        FileNotFoundError: `which` is "real" and there is no champion yet.
    """
    if which == "standin":
        return load_standin(root)
    try:
        return load_real(root)
    except FileNotFoundError as error:
        if which == "real":
            raise
        logger.warning("benchmarking the stand-in model: %s", error)
        return load_standin(root)
