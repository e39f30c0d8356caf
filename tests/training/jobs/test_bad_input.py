"""Bad input fails clearly: a PipelineError naming the file or key, exit code 1, no output."""

from pathlib import Path
from typing import Any

import pytest

from training.cli import main
from training.config import load_params
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import pipeline_files, splits, tuned_params
from training.jobs import split, train

from ..conftest import merged, repo_params, write_params


def test_repository_params_load() -> None:
    """The committed params.yaml is complete and valid (every key, no default to fall back on)."""
    params = load_params(Path(__file__).resolve().parents[3] / "params.yaml")
    assert params.paths.serving_bundle.name


def test_params_with_an_unknown_key_fail(tmp_path: Path) -> None:
    """A typo in a training section is an error naming the key, not a silent default."""
    raw = merged(repo_params(), train={"lightgbm": {"num_leafs": 31}})
    with pytest.raises(PipelineError, match="num_leafs"):
        load_params(write_params(raw, tmp_path / "params.yaml"))


def test_params_with_a_missing_key_fail(tmp_path: Path) -> None:
    """A key left out of params.yaml is an error naming it: there is no default elsewhere."""
    raw = repo_params()
    del raw["paths"]["splits"]
    with pytest.raises(PipelineError, match=r"missing required field `splits`"):
        load_params(write_params(raw, tmp_path / "params.yaml"))


def test_params_with_a_wrong_type_fail(tmp_path: Path) -> None:
    """A string where a number belongs is an error naming the key."""
    raw = merged(repo_params(), tune={"n_trials": "many"})
    with pytest.raises(PipelineError, match="n_trials"):
        load_params(write_params(raw, tmp_path / "params.yaml"))


def test_cli_exits_1_on_bad_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`car-train train` with a bad params file exits 1 and says why on stderr."""
    path = write_params(merged(repo_params(), export={"parity_tolerance": -1}), tmp_path / "p.yaml")
    assert main(["--params", str(path), "train"]) == 1
    assert "parity_tolerance" in capsys.readouterr().err


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
        train.run(params)


def test_train_with_a_missing_feature_column_fails(make_params: Any, write_splits: Any) -> None:
    """A split without a schema column is an error naming the column."""
    import pandas as pd

    params = make_params()
    write_splits(params)
    path = params.paths.splits / "train.parquet"
    pd.read_parquet(path).drop(columns="mileage").to_parquet(path)
    with pytest.raises(PipelineError, match="mileage"):
        train.run(params)


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
        export.run(params)
    assert not params.paths.exported_bundle.exists()
