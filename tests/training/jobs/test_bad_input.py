"""Bad input to the jobs fails clearly: a PipelineError naming the file or key, no output."""

from pathlib import Path
from typing import Any

import pytest

from training.cli import main
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import pipeline_files, splits, tuned_params
from training.io.mlflow_service import MlflowService
from training.jobs import split, train


def test_train_without_splits_fails_and_writes_nothing(
    make_params: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing split files: exit 1 naming the file; no model directory is left behind."""
    params = make_params()
    assert main(["--params", str(tmp_path / "params.yaml"), "train"]) == 1
    assert "train.parquet" in capsys.readouterr().err
    assert not params.paths.trained_pipeline.exists()


def test_train_with_corrupt_features_fails(make_params: Any, write_splits: Any) -> None:
    """A split whose parquet is garbage is an error naming the file."""
    params = make_params()
    write_splits(params)
    (params.paths.splits / "val.parquet").write_bytes(b"not parquet")
    with pytest.raises(PipelineError, match=r"val\.parquet"):
        train.run(params, MlflowService.from_params(params.registry))


def test_train_with_a_missing_feature_column_fails(make_params: Any, write_splits: Any) -> None:
    """A split without a schema column is an error naming the column."""
    import pandas as pd

    params = make_params()
    write_splits(params)
    path = params.paths.splits / "train.parquet"
    pd.read_parquet(path).drop(columns="mileage").to_parquet(path)
    with pytest.raises(PipelineError, match="mileage"):
        train.run(params, MlflowService.from_params(params.registry))


def test_tuned_params_with_an_unknown_key_fail(make_params: Any, write_splits: Any) -> None:
    """A tuned-parameters file with a key LightGBMParams does not know is an error naming it."""
    params = make_params(train={"use_tuned_params": True})
    write_splits(params)
    tuned = params.paths.tuned_params
    tuned.parent.mkdir(parents=True)
    tuned.write_text(
        '{"params": {"num_leavs": 12}, "val_mape": 0.1, "trials": 1, "tune_learning_rate": 0.1}',
        encoding="utf-8",
    )
    with pytest.raises(PipelineError, match="num_leavs"):
        tuned_params.booster_params(params)


def test_missing_tuned_params_fail_naming_the_way_out(make_params: Any) -> None:
    """Without the tuned-parameters file, the error names it and the switch to do without."""
    params = make_params(train={"use_tuned_params": True})
    with pytest.raises(PipelineError, match=r"best_params\.json.*use_tuned_params: false"):
        tuned_params.booster_params(params)


def test_split_without_labels_fails_and_writes_nothing(make_params: Any) -> None:
    """`split` with no labels file names it and leaves no split files behind."""
    params = make_params()
    with pytest.raises(PipelineError, match=r"labels\.parquet"):
        split.run(params)
    assert not params.paths.splits.exists()


@pytest.mark.slow
def test_export_of_a_model_no_run_trained_fails_and_writes_nothing(
    make_params: Any, write_splits: Any, pipeline: PricePipeline, cars: dict[str, Any]
) -> None:
    """Pipeline files with no MLflow run tagged with their fingerprint: named, nothing exported."""
    from training.io.pipeline_files import TrainedModel
    from training.jobs import export

    params = make_params()
    write_splits(params)
    record = TrainedModel(
        vocabulary=pipeline.vocabulary.to_json(),
        log_offset=pipeline.log_offset,
        interval=None,
        best_iteration=1,
        lightgbm={},
        val={},
        dataset=splits.read_summary(params.paths.splits),
    )
    pipeline_files.save(pipeline, params.paths.trained_pipeline, record)
    message = r"no MLflow run tagged pipeline_sha256=.*re-run `car-train train`"
    with pytest.raises(PipelineError, match=message):
        export.run(params, MlflowService.from_params(params.registry))
    assert not params.paths.exported_bundle.exists()
