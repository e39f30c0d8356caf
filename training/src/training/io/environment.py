"""Put back what a library writes into this process's environment.

Some libraries set environment variables for their own subprocesses when imported (Feast's
metrics). Left in `os.environ`, such a value reaches every later subprocess and reads, to the
next caller, as something an operator set. The callers name the variables each library writes.
(MLflow is kept out of the environment altogether: `training.io.mlflow_service`.)
"""

import contextlib
import os
from collections.abc import Iterable, Iterator


@contextlib.contextmanager
def restored(names: Iterable[str]) -> Iterator[None]:
    """Put `names` back in `os.environ` as they were when the block began (unset if unset)."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
