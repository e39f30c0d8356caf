"""The inference image, run as the Deployment runs it: uid 10001, read-only root, bundle read-only.

`podman run --user 10001:10001 --read-only --tmpfs /tmp` with the bundle bind-mounted read-only
from a host directory, as `readOnlyRootFilesystem`, the `tmp` emptyDir and the read-only model
mount do in k8s/base/deployment.yaml. A second bundle written into the host directory must be
picked up through the mount, and SIGTERM (`podman stop`) must drain and exit 0.
"""

import concurrent.futures
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import wait_for
from .conftest import (
    IMAGE_BUILD_S,
    Images,
    host_uids,
    inspect,
    logs,
    podman,
    write_to_root,
)
from .pod import free_port

# The session's image builds run in the setup of whichever test comes first, and pytest-timeout
# counts setup: a cold CI machine builds all three (about 15 min on 2 busy cores), so these
# tests get the build's own limit (images.sh: 1,800 s) and room to run, not the suite's 900 s.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(IMAGE_BUILD_S + 600),
    pytest.mark.needs("podman", "mmdebstrap"),
]

#: The image's `app` user (inference/Dockerfile), which the Deployment's securityContext names.
APP_UID = 10001
#: onnxruntime's telemetry uploader says this when it cannot store its device id (issue 19).
TELEMETRY_LINE = "telemetry"


@dataclass(frozen=True)
class Running:
    """A container started by `run_api`: its name, URL and the host directory it serves."""

    name: str
    url: str
    model_dir: Path


def ready(url: str) -> bool:
    """Whether the server answers /ready with 200."""
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def run_api(images: Images, name: str, model_dir: Path) -> Running:
    """Start the inference image as the Deployment runs it; return once /ready is 200."""
    port = free_port()
    podman(
        "run", "--detach", "--name", name,
        "--user", f"{APP_UID}:{APP_UID}", "--read-only", "--tmpfs", "/tmp",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        # The HEALTHCHECK stays defined (run below by hand); no systemd here for its timer.
        "--health-interval", "disable",
        "--volume", f"{model_dir}:/models:ro",
        "--env", "RELOAD_POLL_S=0.2",
        "--publish", f"127.0.0.1:{port}:8000",
        images.api,
    )  # fmt: skip
    running = Running(name, f"http://127.0.0.1:{port}", model_dir)
    wait_for(lambda: ready(running.url), f"{name} /ready", timeout=60, poll_s=0.2)
    return running


@pytest.fixture(scope="module")
def api(
    images: Images,
    tmp_path_factory: pytest.TempPathFactory,
    bundle_writer: Callable[..., Path],
) -> Iterator[Running]:
    """The image serving the test bundle (version 1) from a host directory, read-only."""
    model_dir = tmp_path_factory.mktemp("image-models")
    model_dir.chmod(0o755)  # readable by uid 10001 through the mount
    bundle_writer(model_dir, model_version="1")
    name = "car-price-test-api"
    podman("rm", "--force", "--ignore", name)
    running = run_api(images, name, model_dir)
    yield running
    podman("rm", "--force", "--time", "0", name)


@pytest.mark.slow
def test_image_runs_as_10001_on_a_read_only_root(api: Running) -> None:
    """Every process runs as uid/gid 10001, and a write to / fails with EROFS."""
    assert host_uids(api.name) == {(APP_UID, APP_UID)}
    assert "Read-only file system" in write_to_root(api.name)


@pytest.mark.slow
def test_image_is_ready_prices_a_car_and_counts_it(
    api: Running, car_payload: dict[str, Any]
) -> None:
    """/ready, a price for a real car, the count in /metrics, and the image's HEALTHCHECK pass."""
    answer = httpx.post(f"{api.url}/predict", json=car_payload, timeout=10)
    metrics = httpx.get(f"{api.url}/metrics", timeout=10).text
    health = podman("healthcheck", "run", api.name, check=False)
    assert answer.status_code == 200, answer.text
    assert 100_000 < answer.json()["price_rub"] < 10_000_000
    assert 'carprice_http_requests_total{route="/predict",status="200"}' in metrics
    assert inspect(api.name, "{{.State.Health.Status}}") == "healthy", health


@pytest.mark.slow
def test_image_reloads_a_bundle_written_into_the_mount(
    api: Running, bundle_writer: Callable[..., Path], car_payload: dict[str, Any]
) -> None:
    """A second bundle written into the host directory is served without a restart."""

    def version() -> str:
        return str(
            httpx.post(f"{api.url}/predict", json=car_payload, timeout=10).json()["model_version"]
        )

    before = version()
    bundle_writer(api.model_dir, model_version="2", bias=-127.0)
    wait_for(lambda: version() == "2", "the reloaded bundle (version 2)", timeout=30, poll_s=0.2)
    assert before == "1"


@pytest.mark.slow
def test_image_logs_no_onnxruntime_telemetry(api: Running) -> None:
    """Read-only as uid 10001, onnxruntime never reports on its telemetry (it is off)."""
    output = logs(api.name)
    assert "serving model" in output  # the server's own log, with its model loaded
    assert TELEMETRY_LINE not in output.lower(), output


@pytest.mark.slow
def test_image_drains_on_sigterm_and_exits_0(
    images: Images,
    tmp_path: Path,
    bundle_writer: Callable[..., Path],
    car_payload: dict[str, Any],
) -> None:
    """`podman stop` (SIGTERM) under requests: answered ones are 200, the exit code 0."""
    tmp_path.chmod(0o755)
    bundle_writer(tmp_path, model_version="1")
    name = "car-price-test-api-drain"
    podman("rm", "--force", "--ignore", name)
    running = run_api(images, name, tmp_path)
    try:

        def ask(_: int) -> int:
            try:
                return httpx.post(
                    f"{running.url}/predict", json=car_payload, timeout=10
                ).status_code
            except httpx.TransportError:
                return 0  # refused once the listener has closed

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = pool.map(ask, range(200))
            stopping = time.monotonic()
            podman("stop", "--time", "30", name)
            stopped_in = time.monotonic() - stopping
            statuses = sorted(answers)
        exit_code = inspect(name, "{{.State.ExitCode}}")
        output = logs(name)
    finally:
        podman("rm", "--force", "--time", "0", name)
    print(f"\nSIGTERM under load: stopped in {stopped_in:.1f} s; answers {Counter(statuses)}")
    assert exit_code == "0", output
    assert set(statuses) <= {200, 0}, statuses
    assert 200 in statuses
    assert "Traceback" not in output
