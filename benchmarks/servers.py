"""Start, time and measure the servers under test: ours (Granian) and the baseline (uvicorn).

The peers (MLServer, BentoML) are started the same way from their specs in
`benchmarks.peers.specs`.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Final, NamedTuple

import psutil

from benchmarks.champion import Champion

#: The repository root: servers run from it so `benchmarks.baseline.app` imports.
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
SERVER_CORE: Final = 0
LOADGEN_CORE: Final = 1
READY_TIMEOUT_S: Final = 120.0
#: The servers' own environments (under `data/`, which git and DVC leave alone for the bench).
ENVS_DIR: Final = REPO_ROOT / "data" / "bench" / "envs"
#: Ours, as `inference/Dockerfile` installs it.
IMAGE_ENV: Final = ENVS_DIR / "ours"


class ServerSpec(NamedTuple):
    """How to start one server: its name in the results, title, command line and env.

    Its routes: `ready_path` answers 200 once the model is loaded, `predict_path` takes one
    car, `health_path` is the framework's cheapest route (the open loop's floor). A peer's
    routes differ from ours.
    """

    name: str
    title: str
    command: tuple[str, ...]
    env: dict[str, str]
    ready_path: str = "/ready"
    predict_path: str = "/predict"
    health_path: str = "/health"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def image_environment() -> Path:
    """Our server's environment built as its image builds it; its `bin/` directory.

    `inference/Dockerfile` installs only `inference` and its runtime dependencies, not editable,
    bytecode compiled (`uv sync --no-dev --no-editable --package inference`, UV_COMPILE_BYTECODE).
    Ours runs from that, not from the workspace's environment: the workspace also holds the
    training stack, and what is installed changes what the server does at start-up (Litestar
    loads its pydantic plugin whenever pydantic is importable: 0.7 s of a cold start here), and
    where PYTHONDONTWRITEBYTECODE is set an uncompiled environment compiles every import anew.
    Re-synced at every run (a second or two): the workspace's sources are reinstalled, so the
    code measured is the code checked out.
    """
    command = ["uv", "sync", "--frozen", "--quiet", "--no-dev", "--no-editable"]
    command += ["--package", "inference", "--compile-bytecode"]
    command += ["--reinstall-package", "inference", "--reinstall-package", "shared-schema"]
    environment = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(IMAGE_ENV)}
    subprocess.run(command, check=True, cwd=REPO_ROOT, env=environment, capture_output=True)
    return IMAGE_ENV / "bin"


def server_specs(champion: Champion, port: int, log_dir: Path) -> list[ServerSpec]:
    """The baseline (given a training pipeline), ours, ours unbatched, ours logging.

    "ours_logged" has the prediction log on, writing to `log_dir`: its cost is the ratio of
    its figures to those of "ours". Every server runs one worker, without access logs. Ours
    runs from its image's environment (`image_environment`), the baseline from the workspace's.
    """
    bin_dir = Path(sys.executable).parent  # the venv's entry points
    ours = (str(image_environment() / "car-serve"), "--port", str(port), "--workers", "1")
    env = {"MODEL_DIR": str(champion.bundle_dir), "HOST": "127.0.0.1", "BATCH_ENABLED": "true"}
    specs = [
        ServerSpec("ours", "ours (Granian + Litestar + ORT, micro-batching on)", ours, env),
        ServerSpec(
            "ours_unbatched", "ours, micro-batching off", ours, env | {"BATCH_ENABLED": "false"}
        ),
        ServerSpec(
            "ours_logged",
            "ours, prediction log on",
            ours,
            env | {"PREDICTION_LOG_DIR": str(log_dir)},
        ),
    ]
    if champion.pipeline_dir is None:
        return specs
    baseline = (str(bin_dir / "uvicorn"), "benchmarks.baseline.app:create_app_from_env")
    baseline += ("--factory", "--port", str(port), "--workers", "1", "--no-access-log")
    env = {"BASELINE_PIPELINE_DIR": str(champion.pipeline_dir)}
    env["BASELINE_MODEL_VERSION"] = champion.manifest.model_version
    title = "baseline (FastAPI + pydantic + uvicorn + pandas)"
    return [ServerSpec("baseline", title, (*baseline, "--log-level", "warning"), env), *specs]


class RunningServer:
    """A server started pinned to the server core, and how long it took to be ready."""

    def __init__(self, spec: ServerSpec, port: int, log_file: Path) -> None:
        self.spec, self.url = spec, f"http://127.0.0.1:{port}"
        self._log = log_file.open("ab")
        started = time.perf_counter()
        # taskset pins the server and every process it forks to one core. Its own process
        # group, to stop it with its workers; the same session, so the same scheduling group.
        self.process = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), *spec.command],
            env={**os.environ, "OMP_NUM_THREADS": "1", **spec.env},
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        while self.process.poll() is None and time.perf_counter() < started + READY_TIMEOUT_S:
            try:
                with urllib.request.urlopen(f"{self.url}{spec.ready_path}", timeout=1) as response:
                    if response.status == 200:
                        self.cold_start_s = time.perf_counter() - started
                        return
            except OSError:  # not listening yet, or 503 while the model loads
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{spec.name} exited or was not ready in {READY_TIMEOUT_S} s")

    def processes(self) -> list[psutil.Process]:
        """The server's processes: taskset exec's into the server, plus any workers."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process of the server."""
        return sum(sum(process.cpu_times()[:2]) for process in self.processes())

    def memory(self) -> dict[str, Any]:
        """RSS and USS of the serving process in MB (Granian's worker, or uvicorn's only one).

        USS is memory unique to the process: RSS also counts shared library pages.
        """
        processes = self.processes()
        infos = [process.memory_full_info() for process in processes[1:] or processes]
        return {
            "max_worker_rss_mb": max(info.rss for info in infos) / 2**20,
            "max_worker_uss_mb": max(info.uss for info in infos) / 2**20,
            "supervisor_rss_mb": processes[0].memory_info().rss / 2**20 if processes[1:] else 0,
        }

    def stop(self) -> None:
        """Stop the server and its workers (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self._log.close()


def start_timed(
    spec: ServerSpec, port: int, log_file: Path, times: int
) -> tuple[RunningServer, list[float]]:
    """Start a server `times` times (each a cold start); the last one is left running."""
    cold_starts = []
    for attempt in range(times):
        server = RunningServer(spec, port, log_file)
        cold_starts.append(server.cold_start_s)
        if attempt < times - 1:
            server.stop()
    return server, cold_starts
