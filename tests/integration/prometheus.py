"""A real Prometheus (Debian's `prometheus` package) for the integration tests, and its API."""

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from ..programs import program
from .conftest import free_port, stop, wait_for

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) of `promql`; fails on a query error."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{promql!r}: {body.get('error')}"
        data = body["data"]
        if data["resultType"] in {"scalar", "string"}:
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])


def fast_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` scraped and evaluated every second, its rule files as absolute paths."""
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(MONITORING / path) for path in config["rule_files"]]
    return config


@contextlib.contextmanager
def running(config: dict[str, Any], workdir: Path) -> Iterator[Prometheus]:
    """Run Prometheus on `config` in `workdir` until ready; stop it on exit."""
    binary = program("prometheus")
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = workdir / "prometheus.log"
    address = f"127.0.0.1:{free_port()}"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={address}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        prometheus = Prometheus(f"http://{address}", log)

        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited early: {log.read_text()}"
            try:
                return httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, "Prometheus")
        yield prometheus
    finally:
        stop(process)
