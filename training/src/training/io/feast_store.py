"""The Feast feature store: apply the repo and read training frames from its offline store.

Where Feast keeps its registry is the repo's own `feature_store.yaml`; the feature view's
source is `paths.features` (the repo's `features.py` reads params.yaml).
"""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Final

import pandas as pd

from training.core.dataset import frame_problems
from training.errors import PipelineError
from training.io import environment


def apply(repo_path: Path) -> None:
    """Run `feast apply` in the feature repo (registers the entity and feature view).

    Raises:
        PipelineError: Feast failed; the message carries its output.
    """
    _run_feast(repo_path, "apply")


def training_frame(repo_path: Path, entities: pd.DataFrame, feature_view: str) -> pd.DataFrame:
    """Fetch a training frame with a point-in-time join on the offline store.

    Args:
        repo_path: The Feast repository.
        entities: `listing_id`, `event_timestamp` and any label columns (e.g. `price`).
        feature_view: The feature view whose features are joined.

    Returns:
        The entity rows with every feature of the view, in the entity frame's order.

    Raises:
        PipelineError: The entity frame lacks its keys, or the view is not registered.
    """
    missing = {"listing_id", "event_timestamp"} - set(entities.columns)
    if missing:
        raise PipelineError(f"entity frame lacks column(s) {', '.join(sorted(missing))}")
    store = _store(repo_path)
    view = _view(store, repo_path, feature_view)
    refs = [f"{feature_view}:{field.name}" for field in view.features]
    order = entities.assign(_order=range(len(entities)))
    frame: pd.DataFrame = store.get_historical_features(entity_df=order, features=refs).to_df()
    frame = frame.sort_values("_order").drop(columns="_order").reset_index(drop=True)
    return frame


def applied_training_frame(
    repo_path: Path, entities: pd.DataFrame, feature_view: str
) -> pd.DataFrame:
    """`apply`, then `training_frame`, then the frame's checks: what a training step reads.

    Feast's registry is state, not a pipeline output: a step applies the repo itself
    (idempotent) rather than rely on one left behind by `feature-store`.

    Raises:
        PipelineError: Feast failed, or the frame has a problem (`frame_problems`), named.
    """
    apply(repo_path)
    frame = training_frame(repo_path, entities, feature_view)
    problems = frame_problems(frame)
    if problems:
        raise PipelineError("Feast training frame: " + "; ".join(problems))
    return frame


def source_path(repo_path: Path, feature_view: str) -> Path:
    """The parquet file the feature view reads, resolved like Feast does (relative to the repo)."""
    view = _view(_store(repo_path), repo_path, feature_view)
    path = Path(view.batch_source.path)
    return path if path.is_absolute() else (repo_path / path).resolve()


#: Set in `os.environ` by `feast.metrics` when it is imported (for its own metrics server).
_FEAST_SETS: Final = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def _import_feast() -> None:
    """Import Feast without letting it change this process's environment.

    `feast.metrics` creates a temporary directory and names it in `PROMETHEUS_MULTIPROC_DIR`
    when imported: every later subprocess (and, in one test process, the server's metrics)
    would then run in Prometheus multiprocess mode in Feast's directory. prometheus_client
    is imported first, so its storage is chosen from the environment as it really is.
    """
    import prometheus_client  # noqa: F401

    with environment.restored(_FEAST_SETS):
        import feast.metrics  # noqa: F401  heavy, only when a store is used


def _store(repo_path: Path):  # type: ignore[no-untyped-def]
    _import_feast()
    from feast import FeatureStore

    if not (repo_path / "feature_store.yaml").is_file():
        raise PipelineError(f"{repo_path}: no feature_store.yaml (not a Feast repository)")
    return FeatureStore(repo_path=str(repo_path))


def _view(store, repo_path: Path, name: str):  # type: ignore[no-untyped-def]
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(name)
    except FeatureViewNotFoundException as exc:
        raise PipelineError(
            f"{repo_path}: feature view {name!r} is not registered; run `car-train feature-store`"
        ) from exc


def _run_feast(repo_path: Path, *args: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("feast")), "--chdir", str(repo_path), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timedelta(minutes=10).total_seconds(),
    )
    if result.returncode != 0:
        raise PipelineError(
            f"feast {' '.join(args)} failed in {repo_path}:\n{result.stdout}\n{result.stderr}"
        )
