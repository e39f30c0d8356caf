"""The multiprocess metrics dir: prepared at process start, before prometheus_client loads."""

import os
from pathlib import Path

import pytest

from inference.multiprocess import MULTIPROC_ENV, multiprocess_environment


def test_existing_dir_is_kept_and_wiped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configured dir is created if missing and emptied of the previous run's samples."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"old")
    (directory / "keep.txt").write_text("not a sample file")
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))
    with multiprocess_environment() as path:
        assert path == directory
        assert sorted(item.name for item in directory.iterdir()) == ["keep.txt"]
    assert os.environ[MULTIPROC_ENV] == str(directory)


def test_without_a_dir_a_temporary_one_lives_as_long_as_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unset, the variable names a fresh temporary dir while inside, and is unset again after."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_environment() as path:
        assert os.environ[MULTIPROC_ENV] == str(path)
        assert path.is_dir()
    assert MULTIPROC_ENV not in os.environ
    assert not path.exists()
