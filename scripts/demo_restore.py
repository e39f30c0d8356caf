"""What `make drift-demo` puts back: the registry's aliases and the files its retrain rewrites.

The demo's retrain acts on the project as it would in production: it registers a challenger,
moves the `champion` and `challenger` aliases and publishes the new champion into the serving
folder. `restored` records all of that before the demo and puts it back when the demo ends or
fails, so the repository's next `make train` publishes and records what it did before. The
registry itself is not copied: its store holds the absolute path of the project's artifact
folder, so a copy would still log the retrain's artifacts into the project.
"""

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from training.config import Params
from training.io import registry
from training.io.mlflow_service import MlflowService

#: The registry aliases the retrain moves.
ALIASES = (registry.CHAMPION, registry.CHALLENGER)


def retrain_writes(params: Params) -> list[Path]:
    """The project's files the refresh and retrain rewrite: the serving folder, their outputs."""
    paths = params.paths
    return [
        paths.serving_bundle,
        paths.retrain_holdout,
        paths.retrain_reference,
        paths.retrain_pipeline,
        paths.retrain_bundle,
        paths.retrain_report,
        paths.refresh_bundle,
        paths.refresh_report,
    ]


@contextmanager
def restored(root: Path, params: Params) -> Iterator[None]:
    """Put back, when the block ends or fails, the aliases and files the retrain moves.

    Paths in params and the MLflow store's URI are relative to the project, hence the chdir.
    """
    name = params.registry.model_name
    with tempfile.TemporaryDirectory(prefix="drift-demo-") as scratch:
        with contextlib.chdir(root):
            service = MlflowService.from_params(params.registry)
            aliases = {alias: registry.version_by_alias(service, name, alias) for alias in ALIASES}
            saved = {
                path: _save(path, Path(scratch) / str(i))
                for i, path in enumerate(retrain_writes(params))
            }
        try:
            yield
        finally:
            with contextlib.chdir(root):
                for path, copy in saved.items():
                    _put_back(path, copy)
                service = MlflowService.from_params(params.registry)
                for alias, version in aliases.items():
                    if version is not None:
                        service.client.set_registered_model_alias(name, alias, version.version)
                    elif registry.version_by_alias(service, name, alias) is not None:
                        service.client.delete_registered_model_alias(name, alias)


def _save(path: Path, copy: Path) -> Path | None:
    """A copy of a file or folder (None when it does not exist)."""
    if path.is_dir():
        shutil.copytree(path, copy, symlinks=True)
    elif path.exists():
        shutil.copy2(path, copy)
    else:
        return None
    return copy


def _put_back(path: Path, copy: Path | None) -> None:
    """Make `path` hold what `copy` does again, byte for byte (None: remove it).

    A folder is refilled in place, never replaced: the serving folder may be mounted. Its
    deepest files go first, so the pointers at its top are written after the bundles they name.
    """
    if copy is None:
        if path.is_dir():
            shutil.rmtree(path)
        path.unlink(missing_ok=True)
    elif copy.is_file():
        _replace(copy, path)
    else:
        path.mkdir(parents=True, exist_ok=True)
        inside = sorted(copy.rglob("*"), key=lambda p: len(p.parts), reverse=True)
        for folder in (p for p in inside if p.is_dir() and not p.is_symlink()):
            (path / folder.relative_to(copy)).mkdir(parents=True, exist_ok=True)
        for source in (p for p in inside if p.is_symlink() or not p.is_dir()):
            _replace(source, path / source.relative_to(copy))
        for extra in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            kept = copy / extra.relative_to(path)
            if kept.exists() or kept.is_symlink():
                continue
            if extra.is_dir() and not extra.is_symlink():
                extra.rmdir()  # emptied already: its files are deeper, so removed first
            else:
                extra.unlink()


def _replace(source: Path, target: Path) -> None:
    """Copy `source` onto `target` by rename, so no reader sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.restoring")
    shutil.copy2(source, partial, follow_symlinks=False)
    partial.replace(target)
