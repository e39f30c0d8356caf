"""`make drift-demo` leaves the project as it found it: `scripts.demo_restore.restored`.

A real SQLite MLflow registry with synthetic versions and a synthetic serving folder stand in
for a trained project; a stand-in for the demo's retrain moves the aliases and rewrites the
files as `car-train retrain` does on promotion. No real data, no training.
"""

import contextlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from scripts.demo_restore import ALIASES, restored, retrain_writes

from training.config import Params, load_params
from training.io import registry
from training.io.mlflow_service import MlflowService

from ..training.conftest import repo_params, write_params


def _params(root: Path) -> Params:
    """The repository's params (paths relative to the project) with the store's URI absolute.

    MLflow caches a store by its URI: a relative one would reach the first test's project.
    """
    raw = repo_params()
    store = raw["registry"]["tracking_uri"].removeprefix("sqlite:///")
    raw["registry"]["tracking_uri"] = f"sqlite:///{root / store}"
    return load_params(write_params(raw, root / "params.yaml"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project once (creating an MLflow store takes seconds), for each test to copy.

    The registry holds versions 1 and 2, `champion` on 1 and no `challenger`; the serving folder
    publishes a bundle of version 1; an older retrain left its holdout file.
    """
    root = tmp_path_factory.mktemp("trained")
    params = _params(root)
    with contextlib.chdir(root):
        service = MlflowService.from_params(params.registry)
        client = service.client
        name = params.registry.model_name
        client.create_registered_model(name)
        for _ in range(2):
            client.create_model_version(name, source=(root / "artifacts").as_uri())
        client.set_registered_model_alias(name, registry.CHAMPION, "1")
        _write(params.paths.serving_bundle / "bundles" / "v1" / "model.onnx", "graph 1")
        _write(params.paths.serving_bundle / "current", '{"bundle": "bundles/v1"}')
        _write(params.paths.retrain_holdout, "an older retrain's holdout")
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Params]:
    """A copy of the trained project, and the demo run from another folder (`--root`)."""
    root = tmp_path / "project"
    shutil.copytree(trained, root)
    params = _params(root)
    # Relative paths must resolve against the project, not the cwd.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return root, params


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _state(root: Path, params: Params) -> dict[str, Any]:
    """The aliases and every file the retrain may rewrite, as bytes."""
    with contextlib.chdir(root):
        service = MlflowService.from_params(params.registry)
        name = params.registry.model_name
        aliases = {}
        for alias in ALIASES:
            version = registry.version_by_alias(service, name, alias)
            aliases[alias] = None if version is None else str(version.version)
        files = {
            file.as_posix(): file.read_bytes()
            for path in retrain_writes(params)
            for file in ([path] if path.is_file() else sorted(path.rglob("*")))
            if file.is_file()
        }
    return {"aliases": aliases, "files": files}


def _retrain_promotes_version_2(root: Path, params: Params) -> None:
    """What `car-train retrain` does to the project when its challenger is promoted."""
    with contextlib.chdir(root):
        service = MlflowService.from_params(params.registry)
        client = service.client
        name = params.registry.model_name
        for alias in (registry.CHALLENGER, registry.CHAMPION):
            client.set_registered_model_alias(name, alias, "2")
        serving = params.paths.serving_bundle
        _write(serving / "bundles" / "v2" / "model.onnx", "graph 2")
        _write(serving / "previous", '{"bundle": "bundles/v1"}')
        _write(serving / "current", '{"bundle": "bundles/v2"}')
        _write(params.paths.retrain_holdout, "this retrain's holdout")
        _write(params.paths.retrain_bundle / "model.onnx", "graph 2")
        _write(params.paths.retrain_report, '{"promote": true}')


@pytest.mark.slow
@pytest.mark.parametrize("fails", [False, True], ids=["completes", "fails"])
def test_the_demo_puts_back_the_aliases_and_the_files(
    project: tuple[Path, Params], fails: bool
) -> None:
    """After the demo, finished or failed, the aliases and files are as before, byte for byte."""
    root, params = project
    before = _state(root, params)
    serving_folder = (root / params.paths.serving_bundle).stat().st_ino
    with contextlib.suppress(RuntimeError), restored(root, params):
        _retrain_promotes_version_2(root, params)
        if fails:
            raise RuntimeError("the replay failed after the retrain")
    assert _state(root, params) == before
    # Refilled, not replaced: a mount of the serving folder keeps following it.
    assert (root / params.paths.serving_bundle).stat().st_ino == serving_folder


@pytest.mark.slow
def test_without_the_restore_the_retrain_moves_the_champion(project: tuple[Path, Params]) -> None:
    """The check above can fail: the stand-in retrain does move the champion and the files."""
    root, params = project
    before = _state(root, params)
    _retrain_promotes_version_2(root, params)
    after = _state(root, params)
    assert after["aliases"] == {registry.CHAMPION: "2", registry.CHALLENGER: "2"}
    assert before["aliases"] == {registry.CHAMPION: "1", registry.CHALLENGER: None}
    changed = {
        p
        for p in before["files"].keys() | after["files"].keys()
        if before["files"].get(p) != after["files"].get(p)
    }
    serving, report = params.paths.serving_bundle, params.paths.retrain_report
    assert (serving / "current").as_posix() in changed
    assert report.as_posix() in changed
