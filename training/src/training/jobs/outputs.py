"""Stage output hygiene shared by the jobs."""

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def all_or_nothing(*paths: Path) -> Iterator[None]:
    """Remove a stage's outputs first, and again if the stage fails.

    A failed stage then leaves no output behind that could be taken for a valid one (each file
    is also written atomically, see `training.io.files`).
    """
    _remove(paths)
    try:
        yield
    except BaseException:
        _remove(paths)
        raise


def _remove(paths: tuple[Path, ...]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
