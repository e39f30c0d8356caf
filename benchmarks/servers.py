"""Start, time and measure the servers under test: ours (Granian) and the baseline (uvicorn)."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from benchmarks.champion import Champion

#: The repository root: servers run from it so `python -m benchmarks.baseline` resolves.
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
SERVER_CORE: Final = 0
LOADGEN_CORE: Final = 1
READY_TIMEOUT_S: Final = 120.0
_MB: Final = 1024 * 1024


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server under test.

    Attributes:
        name: Key in the results ("ours", "ours_unbatched", "baseline").
        title: What the table calls it.
        command: The command line, without the CPU pinning.
        env: Extra environment variables.
    """

    name: str
    title: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bin_path(name: str) -> str:
    """An entry point installed next to this interpreter (the venv's `bin/`)."""
    return str(Path(sys.executable).with_name(name))


def server_specs(champion: Champion, port: int, workers: int = 1) -> list[ServerSpec]:
    """Ours with micro-batching on and off, and the baseline.

    Args:
        champion: The model.
        port: The port every server binds (one runs at a time).
        workers: Worker processes of every server.
    """
    ours = (bin_path("car-serve"), "--port", str(port), "--workers", str(workers))
    common = {"MODEL_DIR": str(champion.bundle_dir), "HOST": "127.0.0.1"}
    baseline = (
        sys.executable,
        "-m",
        "benchmarks.baseline",
        *champion.baseline_args,
        "--model-version",
        champion.model_version,
        "--port",
        str(port),
        "--workers",
        str(workers),
    )
    return [
        ServerSpec(
            "ours",
            "ours (Granian + Litestar + ORT, micro-batching on)",
            ours,
            {**common, "BATCH_ENABLED": "true"},
        ),
        ServerSpec(
            "ours_unbatched",
            "ours, micro-batching off",
            ours,
            {**common, "BATCH_ENABLED": "false"},
        ),
        ServerSpec("baseline", "baseline (FastAPI + pydantic + uvicorn + pandas)", baseline),
    ]


class RunningServer:
    """A started server process (pinned to the server core) and how long it took to be ready."""

    def __init__(self, spec: ServerSpec, port: int, log_file: Path) -> None:
        self.spec = spec
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", **spec.env}
        self._log = log_file.open("ab")
        started = time.perf_counter()
        # taskset pins the server and every process it forks to one core.
        self.process = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), *spec.command],
            env=env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group, to stop it with its workers; the same session, so the
            # server shares the runner's scheduling group (autogroup), as the README describes.
            process_group=0,
        )
        self.cold_start_s = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        deadline = started + READY_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.spec.name} not ready within {READY_TIMEOUT_S} s")

    def processes(self) -> list[psutil.Process]:
        """The server's processes: taskset exec's into the server, plus any workers."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process of the server."""
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def memory(self) -> dict[str, Any]:
        """RSS and USS of the serving process(es), in MB.

        The worker is the process that answers requests: Granian's child, or uvicorn's only
        process when it runs one worker. A supervisor's own memory is reported apart.
        """
        processes = self.processes()
        workers = processes[1:] or processes
        per_worker = []
        for process in workers:
            info = process.memory_full_info()
            per_worker.append({"rss_mb": info.rss / _MB, "uss_mb": info.uss / _MB})
        supervisor = processes[0].memory_info().rss / _MB if len(processes) > 1 else 0.0
        return {
            "workers": per_worker,
            "max_worker_rss_mb": max(item["rss_mb"] for item in per_worker),
            "max_worker_uss_mb": max(item["uss_mb"] for item in per_worker),
            "supervisor_rss_mb": supervisor,
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


def post_json(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """POST a JSON body; the status and the response body (errors included)."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
