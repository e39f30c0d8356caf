"""A running server on a bind mount of the serving folder follows publishes, `dvc repro` too.

Production's shape: docker-compose bind-mounts `./data/model` into the server and a pod mounts
the data claim; neither follows a directory that is deleted and made again (the mount keeps the
old inode). Here `car-serve` runs in a private mount namespace (`unshare --mount`) where `/srv`
is a read-only bind mount of a synthetic project's `paths.serving_bundle`, and the project
publishes twice while it serves: `car-train fetch-model` (what the drift DAG's `publish` task
runs), then the real `dvc repro` of the `publish` stage. After each, the server must answer
the new version through the mount. A second `dvc repro` changes nothing in dvc.lock and makes
the server load nothing.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from training.config import Params, load_params
from training.io import registry
from training.io.mlflow_service import MlflowService

from ..programs import program
from ..training.conftest import REPO_ROOT
from ..training.jobs.conftest import champion_project
from ..training.raw_markets import synthetic_2020, synthetic_2022
from .conftest import ServerProcess, serve

pytestmark = [
    pytest.mark.needs("car-serve", "car-train", "dvc", "unshare"),
    pytest.mark.integration,
]

BIN = Path(sys.executable).parent
#: 60 validation rows of 200: the interval calibrates on at least 50.
SPLIT = {"val_fraction": 0.3, "test_fraction": 0.2}
# The serving folder bind-mounted read-only at /srv, as compose mounts ./data/model (":ro").
BIND_MOUNT = """set -e
mount --bind "$SERVING" /srv && mount -o remount,bind,ro /srv
exec "$@"
"""
FAILURES = 'carprice_model_loads_total{outcome="failure"}'
SUCCESSES = 'carprice_model_loads_total{outcome="success"}'


def served(server: ServerProcess) -> str | None:
    """The model version /ready answers (None while unready)."""
    version = httpx.get(f"{server.url}/ready", timeout=5).json()["model_version"]
    return None if version is None else str(version)


def make_champion(params: Params) -> str:
    """Register the champion's run as a new registry version and give it the alias."""
    service = MlflowService.from_params(params.registry)
    name = params.registry.model_name
    champion = registry.require_alias(service, name, registry.CHAMPION)
    version = registry.register(service, name, champion.run_id, {"test": "bind-mount"})
    service.client.set_registered_model_alias(name, registry.CHAMPION, version)
    return version


def run(command: list[str], cwd: Path) -> str:
    """Run a command in the project without an outside tracking URI; its output."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def follow(server: ServerProcess, version: str, start: float) -> float:
    """Seconds from `start` until the server answers `version` (fails 30 s on, naming it)."""
    deadline = time.monotonic() + 30
    while (now := served(server)) != version:
        assert time.monotonic() < deadline, (
            f"the server still serves version {now} through the bind mount, not {version}"
        )
        time.sleep(0.1)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, fast_training: dict[str, dict[str, Any]]
) -> tuple[Path, Params]:
    """A synthetic DVC project with champion version 1 published in its serving folder."""
    root = tmp_path_factory.mktemp("publish_project")
    markets = (synthetic_2020(200), synthetic_2022())
    champion_project(root, markets, {**fast_training, "split": SPLIT})
    for package in ("shared_schema", "training"):
        shutil.copytree(
            REPO_ROOT / package / "src",
            root / package / "src",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copyfile(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")
    run([program("dvc"), "init", "--no-scm", "-q"], root)
    return root, load_params(root / "params.yaml")


@pytest.mark.slow
def test_server_on_a_bind_mount_follows_fetch_model_and_dvc_repro_publish(
    project: tuple[Path, Params], tmp_path: Path
) -> None:
    """Two publishes, the second `dvc repro`: each served through the mount; a rerun: nothing."""
    root, params = project
    dvc = program("dvc")
    unshare = program("unshare")
    launcher = [unshare, "--mount", "--propagation=private", "sh", "-c", BIND_MOUNT, "sh"]
    with serve(
        params.paths.serving_bundle,
        tmp_path / "server.log",
        launcher=launcher,
        SERVING=str(params.paths.serving_bundle),
        MODEL_DIR="/srv",
        RELOAD_POLL_S="0.2",
    ) as server:
        assert served(server) == "1"
        second = make_champion(params)
        start = time.monotonic()
        run([program("car-train"), "fetch-model", "--alias", "champion"], root)
        fetch_s = time.monotonic() - start
        after_fetch = follow(server, second, start)

        third = make_champion(params)
        start = time.monotonic()
        run([dvc, "repro", "--single-item", "publish"], root)
        repro_s = time.monotonic() - start
        after_repro = follow(server, third, start)
        lock = (root / "dvc.lock").read_bytes()
        loads = server.metric(SUCCESSES)

        again = run([dvc, "repro", "--single-item", "publish"], root)
        forced = run([dvc, "repro", "--single-item", "--force", "publish"], root)
        time.sleep(1)  # five polls
        assert server.metric(SUCCESSES) == loads
        assert server.metric(FAILURES) == 0
    print(
        f"\nbind mount: fetch-model (v{second}) ran {fetch_s:.2f} s, served {after_fetch:.2f} s "
        f"after its start; dvc repro publish (v{third}) ran {repro_s:.2f} s, served "
        f"{after_repro:.2f} s after its start"
    )
    assert "didn't change, skipping" in again
    assert "Running stage 'publish'" in forced
    assert (root / "dvc.lock").read_bytes() == lock
    assert "Traceback" not in server.log.read_text()
