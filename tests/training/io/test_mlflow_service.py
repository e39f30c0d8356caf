"""MlflowService.as_default: MLflow's process-wide default is this store inside, as before after."""

import os
from pathlib import Path

from training.io.mlflow_service import MlflowService


def test_as_default_points_mlflow_at_the_store_and_puts_it_back(tmp_path: Path) -> None:
    """Inside, MLflow's getters name the service's URIs; after, the earlier ones; env untouched."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    service = MlflowService(uri, uri, "car-price", tmp_path / "artifacts")
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), dict(os.environ))
    with service.as_default():
        assert mlflow.get_tracking_uri() == uri
        assert mlflow.get_registry_uri() == uri
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), dict(os.environ)) == before
