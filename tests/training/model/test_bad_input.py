"""Bad input fails clearly: a PipelineError naming the file or key, exit code 1, no output."""

from pathlib import Path
from typing import Any

import pytest

from training.cli import main
from training.config import load_params
from training.errors import PipelineError
from training.jobs import train


def test_params_with_an_unknown_key_fail(tmp_path: Path) -> None:
    """A typo in a training section is an error naming the key, not a silent default."""
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lightgbm:\n    num_leafs: 31\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="num_leafs"):
        load_params(path)


def test_params_with_a_wrong_type_fail(tmp_path: Path) -> None:
    """A string where a number belongs is an error naming the key."""
    path = tmp_path / "params.yaml"
    path.write_text("tune:\n  n_trials: many\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="n_trials"):
        load_params(path)


def test_cli_exits_1_on_bad_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`car-train train` with a bad params file exits 1 and says why on stderr."""
    path = tmp_path / "params.yaml"
    path.write_text("export:\n  parity_tolerance: -1\n", encoding="utf-8")
    assert main(["--params", str(path), "train"]) == 1
    assert "parity_tolerance" in capsys.readouterr().err


def test_train_without_splits_fails_and_writes_nothing(
    make_params: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing split files: exit 1 naming the file; no model directory is left behind."""
    params = make_params()
    assert main(["--params", str(Path(params.split.splits_dir).parent / "params.yaml"), "train"])
    assert "train.parquet" in capsys.readouterr().err
    assert not Path(params.train.model_dir).exists()


def test_train_with_corrupt_features_fails(make_params: Any, write_splits: Any) -> None:
    """A split whose parquet is garbage is an error naming the file."""
    params = make_params()
    write_splits(params)
    (Path(params.split.splits_dir) / "val.parquet").write_bytes(b"not parquet")
    with pytest.raises(PipelineError, match=r"val\.parquet"):
        train.run(params)


def test_train_with_a_missing_feature_column_fails(make_params: Any, write_splits: Any) -> None:
    """A split without a schema column is an error naming the column."""
    import pandas as pd

    params = make_params()
    write_splits(params)
    path = Path(params.split.splits_dir) / "train.parquet"
    pd.read_parquet(path).drop(columns="mileage").to_parquet(path)
    with pytest.raises(PipelineError, match="mileage"):
        train.run(params)


def test_tuned_params_with_an_unknown_key_fail(make_params: Any, write_splits: Any) -> None:
    """best_params.json with a key LightGBMParams does not know is an error naming it."""
    params = make_params(train={"use_tuned_params": True})
    write_splits(params)
    tuned = Path(params.tune.tune_dir) / "best_params.json"
    tuned.parent.mkdir(parents=True)
    tuned.write_text('{"params": {"num_leavs": 12}}', encoding="utf-8")
    with pytest.raises(PipelineError, match="num_leavs"):
        train.lightgbm_params(params)


def test_split_without_labels_fails_and_writes_nothing(make_params: Any) -> None:
    """`split` with no labels file names it and leaves no split files behind."""
    from training.jobs import split

    params = make_params(data={"features_dir": str(Path(make_params().split.splits_dir).parent)})
    with pytest.raises(PipelineError, match=r"labels\.parquet"):
        split.run(params)
    assert not any(Path(params.split.splits_dir).glob("*.parquet"))
