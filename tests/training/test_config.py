"""Bad params fail clearly: a PipelineError naming the key, exit code 1 from the CLI."""

from pathlib import Path

import pytest

from training.cli import main
from training.config import load_params
from training.errors import PipelineError

from .conftest import REPO_ROOT, merged, repo_params, write_params


def test_repository_params_load() -> None:
    """The committed params.yaml is complete and valid (every key, no default to fall back on)."""
    params = load_params(REPO_ROOT / "params.yaml")
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
