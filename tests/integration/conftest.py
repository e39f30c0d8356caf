"""Helpers for tests that start real processes."""

import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..conftest import wait_for
from ..programs import program
from ..proxy_bound import HAPROXY_CFG
from ..training.conftest import REPO_ROOT

# Lag shedding off, for tests of other behaviour under load: on a busy machine a late event loop
# turns requests away 503 by design, which such a test would count as its own failure (CI saw
# it in the bundle-fault and SIGKILL tests). test_faults_under_load's overload test covers it.
NO_LAG_SHEDDING = {"SHED_LAG_MS": "60000"}


def run_demo(module: str, root: Path, timeout: float) -> str:
    """Run a demo script (`python -m scripts.<module> --root ROOT`) to its end; its stdout.

    Without the test session's MLFLOW_TRACKING_URI: the script finds the project's own
    registry from ROOT's params.yaml, as `make` would run it.
    """
    result = subprocess.run(
        [sys.executable, "-m", f"scripts.{module}", "--root", str(root)],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process started by a test; kill it if it does not exit within 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class ServerProcess:
    """A `car-serve` started by `serve`: its process, URL and log."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def metrics(self) -> str:
        """The /metrics exposition."""
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def metric(self, sample: str) -> float:
        """The value of one exposition line's sample (0 when absent)."""
        match = re.search(rf"^{re.escape(sample)} (\S+)$", self.metrics(), re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def worker_pids(self) -> list[int]:
        """The Granian worker processes, children of the main process."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def ready(self) -> bool:
        """/ready answers 200 (False while it cannot be reached)."""
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False


@contextlib.contextmanager
def serve(
    model_dir: Path,
    log: Path,
    *,
    workers: int = 1,
    launcher: Sequence[str] = (),
    **settings: str,
) -> Iterator[ServerProcess]:
    """Run `car-serve` on a free loopback port until the block ends, ready when yielded.

    Args:
        model_dir: The bundle to serve.
        log: File that receives the server's stderr (read it when a test fails).
        workers: Granian workers; the block starts once each has loaded the model.
        launcher: A command that runs car-serve (given as its last arguments), such as
            `unshare` for a namespace.
        **settings: Further settings as environment variables (`BODY_TIMEOUT_S="1"`), also
            `PROMETHEUS_MULTIPROC_DIR` (otherwise car-serve makes its own).
    """
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env = {
        **inherited,
        "MODEL_DIR": str(model_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": str(workers),
        "RELOAD_POLL_S": "0",
        "LOG_LEVEL": "warning",
        **settings,
    }
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*launcher, program("car-serve")], env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(server.ready, "the server to become ready", timeout=60)
        wait_for(
            lambda: server.metric('carprice_model_loads_total{outcome="success"}') >= workers,
            "every worker to load the model",
        )
        yield server
    finally:
        if process.poll() is None:
            stop(process)


@contextlib.contextmanager
def pod_layout() -> Iterator[Sequence[str]]:
    """Split the cores as a pod does: the server on one, everything else on the others.

    Yields the launcher that pins `car-serve` (pass it to `serve`); until the block ends this
    thread, and so every process it starts (the proxy, the load generator) and every thread it
    starts, runs on the remaining cores. Without the split the generator and the proxy take
    the server's CPU at high rates, and what a test measures is the scheduler. On a single
    core nothing is pinned.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        yield ()
        return
    os.sched_setaffinity(0, cores[1:])
    try:
        yield ("taskset", "--cpu-list", str(cores[0]))
    finally:
        os.sched_setaffinity(0, cores)


def listening(port: int) -> bool:
    """Something accepts TCP connections on this loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def haproxy(
    upstream: str,
    log: Path,
    *,
    max_in_flight: int,
    metrics_port: int | None = None,
    config: Path = HAPROXY_CFG,
) -> Iterator[str]:
    """Run HAProxy with the repository's config in front of `upstream`; yield its URL.

    Args:
        upstream: The server's address, host:port.
        log: File that receives HAProxy's log (errors and 503s only, see the config).
        max_in_flight: `PROXY_MAX_IN_FLIGHT`, the bound on prediction requests in flight.
        metrics_port: `PROXY_METRICS_PORT`, where Prometheus scrapes (a free port if None).
        config: The config file (a broken copy of the repository's, for a test that must fail).
    """
    binary = program("haproxy")
    port = free_port()
    env = {
        **os.environ,
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(port),
        "PROXY_UPSTREAM": upstream,
        "PROXY_MAX_IN_FLIGHT": str(max_in_flight),
        "PROXY_METRICS_PORT": str(metrics_port or free_port()),
    }
    with log.open("wb") as output:
        # -db: in the foreground, as in a container.
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], env=env, stdout=output, stderr=output
        )

    def started() -> bool:
        assert process.poll() is None, log.read_text()
        return listening(port)

    try:
        wait_for(started, "haproxy to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
