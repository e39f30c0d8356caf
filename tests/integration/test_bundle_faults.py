"""Bad bundles under load: the old model keeps serving, each fault counted, the alert fires.

The faults: the model dir unreadable, a bundle replaced mid-write, a bundle of a future
schema major. The old model keeps serving every request; each fault is counted in
`carprice_model_loads_total{outcome="failure"}`, which CarPriceModelReloadFailures alerts on
(its promtool tests: monitoring/tests/service_alerts_test.yml).

The server runs as uid 1000 in a user namespace (`unshare --user`), where the files it reads,
owned by root outside, are its own: mode bits apply to it, so `chmod 000` makes the model dir
unreadable, as it would for the image's non-root user (as root, reads ignore mode bits).
"""

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shared_schema.bundle import MANIFEST_FILE, MODEL_FILE

from .conftest import NO_LAG_SHEDDING, ServerProcess, serve, wait_for
from .test_faults_under_load import Clients

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "unshare")]

WORKERS = 2
FAILURES = 'carprice_model_loads_total{outcome="failure"}'
AS_UID_1000 = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]


def wait_for_failures(server: ServerProcess, expected: float, what: str) -> None:
    wait_for(lambda: server.metric(FAILURES) >= expected, what, timeout=30)


def served_version(server: ServerProcess) -> str:
    return str(httpx.get(f"{server.url}/model", timeout=10).json()["model_version"])


@pytest.mark.slow
def test_bad_bundles_under_load_leave_the_old_model_serving(
    tmp_path: Path, model_bundle: Path, bundle_writer: Callable[..., Path]
) -> None:
    """Unreadable dir, half-written bundle, future major: counted; every request still 200."""
    model_dir = tmp_path / "model"
    shutil.copytree(model_bundle, model_dir)
    with (
        serve(
            model_dir,
            tmp_path / "server.log",
            workers=WORKERS,
            launcher=AS_UID_1000,
            RELOAD_POLL_S="0.2",
            **NO_LAG_SHEDDING,
        ) as server,
        Clients(f"{server.url}/predict") as clients,
    ):
        failures = server.metric(FAILURES)

        model_dir.chmod(0)
        failures += WORKERS  # one per worker, once for as long as it stays unreadable
        wait_for_failures(server, failures, "the unreadable model dir to be counted")
        time.sleep(1)
        assert server.metric(FAILURES) == failures
        model_dir.chmod(0o755)

        # A copy that stopped half-way: the new model's first half, the old manifest.
        fresh = bundle_writer(tmp_path / "fresh", model_version="2", bias=-127.0)
        model = (fresh / MODEL_FILE).read_bytes()
        (model_dir / MODEL_FILE).write_bytes(model[: len(model) // 2])
        failures += WORKERS
        wait_for_failures(server, failures, "the half-written bundle to be refused")
        assert served_version(server) == "1"

        future = bundle_writer(tmp_path / "future", model_version="3", schema_version="2.0.0")
        for name in (MODEL_FILE, MANIFEST_FILE):  # the deploy rule: model first, manifest last
            shutil.copyfile(future / name, model_dir / name)
        failures += WORKERS
        wait_for_failures(server, failures, "the future schema major to be refused")
        assert served_version(server) == "1"
        ready = httpx.get(f"{server.url}/ready", timeout=10)
        log = server.log.read_text()
    manifest = json.loads((future / MANIFEST_FILE).read_text())
    assert manifest["sha256"] == hashlib.sha256((future / MODEL_FILE).read_bytes()).hexdigest()
    outcomes = set(clients.outcomes)
    print(
        f"\nbad bundles: {len(clients.outcomes)} requests during the faults, outcomes "
        f"{sorted(map(str, outcomes))}, failures counted {failures:.0f}"
    )
    assert outcomes == {200}
    assert ready.status_code == 200
    for reason in ("Permission denied", "does not match the manifest", "major versions differ"):
        assert reason in log
