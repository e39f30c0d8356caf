"""`verify_serving`'s checks against real servers: one `/ready`, or every pod through Prometheus."""

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from car_price.serving import (
    MODEL_INFO,
    ServingCheckError,
    wait_for_version,
    wait_for_version_everywhere,
)
from inference import metrics

from ..conftest import publish_bundle
from ..integration.conftest import ServerProcess, free_port, serve, stop
from ..programs import program

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "prometheus")]


@pytest.fixture(scope="module")
def server(model_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """car-serve on the test bundle (model version "1")."""
    with serve(model_bundle, tmp_path_factory.mktemp("serving") / "server.log") as running:
        yield running


def test_passes_once_the_server_answers_the_version(server: ServerProcess) -> None:
    """/ready answering model_version "1" satisfies a wait for "1"."""
    wait_for_version(server.url, "1", timeout_s=5, poll_s=0.1)


def test_fails_naming_the_version_the_server_keeps_answering(server: ServerProcess) -> None:
    """A server still on the old version fails the check with what it answered."""
    with pytest.raises(ServingCheckError) as failure:
        wait_for_version(server.url, "2", timeout_s=0.5, poll_s=0.1)
    message = str(failure.value)
    assert f"{server.url}/ready did not serve model version 2 within 0.5 s" in message
    assert message.endswith("last: model_version 1")


def test_fails_naming_an_unreachable_server() -> None:
    """Nothing listening: the check fails and says the server could not be reached."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServingCheckError, match=r"/ready did not serve .* last: unreachable"):
        wait_for_version(url, "1", timeout_s=0.3, poll_s=0.1)


# ---- every pod, through a real Prometheus ----------------------------------------------------

JOB = "car-price"


@dataclass
class Fleet:
    """Three servers scraped by one Prometheus as job `car-price`.

    Two follow the shared serving folder (pods on one claim); the third serves its own copy of
    version 1 and never sees a publish (a pod stuck on a stale mount).
    """

    folder: Path
    prometheus_url: str
    servers: list[ServerProcess]


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, bundle_publisher: Callable[..., Any]
) -> Iterator[Fleet]:
    """The three servers on version 1, and Prometheus scraping them every second."""
    binary = program("prometheus")
    workdir = tmp_path_factory.mktemp("fleet")
    folder, stale = workdir / "model", workdir / "stale"
    bundle_publisher(folder, model_version="1")
    bundle_publisher(stale, model_version="1")
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(serve(path, workdir / f"server{n}.log", RELOAD_POLL_S="0.2"))
            for n, path in enumerate((folder, folder, stale))
        ]
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [
                        {"targets": [s.url.removeprefix("http://") for s in servers]}
                    ],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        with (workdir / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stack.callback(stop, process)
        yield Fleet(folder, f"http://127.0.0.1:{port}", servers)


def test_every_target_must_serve_the_version(fleet: Fleet) -> None:
    """All three on v1 pass; after a publish the stale pod fails the check, naming the counts."""
    wait_for_version_everywhere(fleet.prometheus_url, JOB, "1", timeout_s=30, poll_s=0.5)
    publish_bundle(fleet.folder, model_version="2", bias=-127.0)
    # The one-URL check passes on a pod that followed: it cannot see the stale one.
    wait_for_version(fleet.servers[0].url, "2", timeout_s=10, poll_s=0.1)
    with pytest.raises(ServingCheckError) as failure:
        wait_for_version_everywhere(fleet.prometheus_url, JOB, "2", timeout_s=8, poll_s=0.5)
    message = str(failure.value)
    assert f"job {JOB} did not serve model version 2 on every target within 8 s" in message
    assert message.endswith("last: 3 targets up, serving {'1': 1, '2': 2}")


def test_a_stopped_target_no_longer_counts(fleet: Fleet) -> None:
    """Once the stale pod is gone (up == 0), the two that serve v2 satisfy the check."""
    stop(fleet.servers[2].process)
    wait_for_version_everywhere(fleet.prometheus_url, JOB, "2", timeout_s=30, poll_s=0.5)


def test_fails_naming_an_unreachable_prometheus() -> None:
    """No Prometheus listening: the check fails and says it could not be reached."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServingCheckError, match=r"last: Prometheus unreachable"):
        wait_for_version_everywhere(url, JOB, "1", timeout_s=0.3, poll_s=0.1)


def test_model_info_is_the_servers_metric_name() -> None:
    """The check asks for the gauge the server exports (one name, two packages)."""
    assert MODEL_INFO == metrics.MODEL_INFO


#: The labels a scrape gives every target: Prometheus' own, and the Prometheus Operator's for a
#: PodMonitor/ServiceMonitor. An exported label of the same name is renamed `exported_<name>`,
#: and `job` would then no longer select the servers in the check's query.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "endpoint", "service"}


def test_model_info_keeps_its_labels_under_any_scrape() -> None:
    """The gauge exports model_version and no target label, so none is renamed exported_*."""
    served = metrics.Metrics()
    served.model_info.labels("car-price", "7", "3", "abc").set(1)
    (family,) = [f for f in served.registry.collect() if f.name == MODEL_INFO]
    (labels,) = {frozenset(sample.labels) for sample in family.samples}
    assert "model_version" in labels
    assert not labels & TARGET_LABELS, labels
