"""The rendered `dev` overlay's pod, run by `podman kube play` from the images built here.

Both containers, the server and the HAProxy sidecar, from the local images; the claims as
podman named volumes, the model claim holding a test bundle; then the checks a cluster would
make: priced through the proxy's port, 503 past the proxy's bound, the probes' paths answer, the
processes run as the manifest's uids, the root filesystems are read-only. What podman 4.3 plays
and ignores: tests/containers/pod.py.
"""

import concurrent.futures
import itertools
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ..conftest import publish_bundle, wait_for
from . import pod
from .conftest import IMAGE_BUILD_S, Images, host_uids, logs, podman, write_to_root

# The session's image builds run in the setup of whichever test comes first, and pytest-timeout
# counts setup: a cold CI machine builds all three (about 15 min on 2 busy cores), so these
# tests get the build's own limit (images.sh: 1,800 s) and room to run, not the suite's 900 s.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(IMAGE_BUILD_S + 600),
    pytest.mark.needs("podman", "mmdebstrap", "kubectl"),
]


#: The pod's address on podman's kube network (the infra container holds the pod's netns).
IP_TEMPLATE = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"


@dataclass(frozen=True)
class Pod:
    """A pod played from the manifest: the docs it came from, its IP and its containers' names."""

    docs: list[pod.Doc]
    ip: str
    names: dict[str, str]  # role (api, proxy) -> podman container name

    def url(self, role: str, port_name: str) -> str:
        """http://<pod IP>:<the named port of the container with that role>."""
        return f"http://{self.ip}:{pod.port(pod.container(self.docs, role), port_name)}"


def volume_path(name: str) -> Path:
    """Where a podman named volume's files are on this host."""
    return Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", name).strip())


def image_env(image: str) -> dict[str, str]:
    """The ENV of an image (what a container gets unless the manifest says otherwise)."""
    lines = podman(
        "image", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", image
    )
    return dict(line.split("=", 1) for line in lines.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def played(images: Images) -> Iterator[Pod]:
    """The dev pod, played with its claims, serving a test bundle; removed afterwards."""
    docs = pod.render("dev")
    claims = pod.claims(docs)
    with tempfile.TemporaryDirectory() as scratch:
        claims_yaml = Path(scratch) / "claims.yaml"
        pod_yaml = Path(scratch) / "pod.yaml"
        claims_yaml.write_text(yaml.safe_dump_all(claims))
        pod_yaml.write_text(yaml.safe_dump_all(pod.playable(docs, images)))
        volumes = [doc["metadata"]["name"] for doc in [*claims, *pod.config_maps(docs)]]
        podman("kube", "down", str(pod_yaml), check=False)
        for volume in volumes:
            podman("volume", "rm", "--force", volume, check=False)
        # The claims first, as their own play: podman makes each a named volume.
        podman("kube", "play", str(claims_yaml))
        server = pod.container(docs, "api")
        model_dir = (image_env(images.api) | pod.env(docs, server))["MODEL_DIR"]
        pod.publish_model(
            docs, model_dir, volume_path, lambda d: publish_bundle(d, model_version="1")
        )
        report = podman("kube", "play", str(pod_yaml), timeout=300)
        try:
            pod_id = report.split("Pod:\n", 1)[1].split()[0]
            pod_name = podman("pod", "inspect", "--format", "{{.Name}}", pod_id).strip()
            infra = podman("pod", "inspect", "--format", "{{.InfraContainerID}}", pod_id).strip()
            ip = podman("inspect", "--format", IP_TEMPLATE, infra).strip()
            names = {
                role: f"{pod_name}-{pod.container(docs, role)['name']}" for role in ("api", "proxy")
            }
            running = Pod(docs, ip, names)
            try:
                wait_for(
                    lambda: ready(running.url("proxy", "http")),
                    "/ready through the proxy",
                    timeout=60,
                    poll_s=0.2,
                )
            except BaseException:
                print("\n".join(f"{name}:\n{logs(name)}" for name in names.values()))
                raise
            yield running
        finally:
            podman("kube", "down", str(pod_yaml), check=False)
            # The claims' volumes and the ones podman made for the ConfigMaps.
            for volume in volumes:
                podman("volume", "rm", "--force", volume, check=False)


def ready(url: str) -> bool:
    """Whether /ready answers 200 at `url`."""
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_pod_prices_a_car_through_the_proxy_port(played: Pod, car_payload: dict[str, Any]) -> None:
    """A car POSTed to the proxy's `http` port is priced by the server behind it."""
    answer = httpx.post(f"{played.url('proxy', 'http')}/predict", json=car_payload, timeout=10)
    assert answer.status_code == 200, answer.text
    assert 100_000 < answer.json()["price_rub"] < 10_000_000


@pytest.mark.slow
def test_pod_probe_paths_answer(played: Pod) -> None:
    """Every probe of both containers answers as the kubelet would ask it (HTTP 200, TCP open)."""
    asked: list[tuple[str, str, str, str]] = []
    for role in ("api", "proxy"):
        container = pod.container(played.docs, role)
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind)
            if probe is None:
                continue
            if "httpGet" in probe:
                target = f"{played.url(role, probe['httpGet']['port'])}{probe['httpGet']['path']}"
                status = httpx.get(target, timeout=5).status_code
                asked.append((role, kind, target, str(status)))
                assert status == 200, (role, kind, target)
            else:
                port = pod.port(container, probe["tcpSocket"]["port"])
                with socket.create_connection((played.ip, port), timeout=5):
                    asked.append((role, kind, f"{played.ip}:{port}", "open"))
    print(f"\nprobes: {asked}")
    assert {role for role, *_ in asked} == {"api", "proxy"}


@pytest.mark.slow
def test_pod_serves_metrics_on_the_scraped_port_only(played: Pod) -> None:
    """Each PodMonitor endpoint answers on its port, and the API port refuses the same paths."""
    endpoints = pod.scrape_endpoints()
    assert endpoints, "the prod overlay renders no PodMonitor endpoint"
    for port_name, path in endpoints:
        scraped = httpx.get(f"{played.url('proxy', port_name)}{path}", timeout=10)
        assert scraped.status_code == 200, (port_name, path, scraped.status_code)
        assert "# TYPE" in scraped.text, (port_name, path)
        public = httpx.get(f"{played.url('proxy', 'http')}{path}", timeout=10)
        assert public.status_code == 404, (path, public.status_code)


@pytest.mark.slow
def test_pod_processes_run_as_the_manifests_uids(played: Pod) -> None:
    """Every process of each container runs as the uid and gid its securityContext names."""
    for role, name in played.names.items():
        wanted = pod.run_as(played.docs, pod.container(played.docs, role))
        seen = host_uids(name)
        assert seen == {wanted}, (role, seen, wanted)


@pytest.mark.slow
def test_pod_root_filesystems_are_read_only(played: Pod) -> None:
    """Writing to / fails with EROFS in both containers."""
    for name in played.names.values():
        assert "Read-only file system" in write_to_root(name), name


@pytest.mark.slow
def test_pod_proxy_answers_503_past_its_bound(played: Pod, car_payload: dict[str, Any]) -> None:
    """With the server held, PROXY_MAX_IN_FLIGHT requests wait and every one past them gets 503."""
    proxy = pod.container(played.docs, "proxy")
    bound = int(pod.env(played.docs, proxy)["PROXY_MAX_IN_FLIGHT"])
    extra = 3
    url = f"{played.url('proxy', 'http')}/predict"
    # Frozen, the server holds every request the proxy passes it (the kernel still accepts the
    # connections), so exactly `bound` are in flight and the rest meet the proxy's bound.
    podman("pause", played.names["api"])
    try:
        with concurrent.futures.ThreadPoolExecutor(bound + extra) as pool:
            answers = [
                pool.submit(httpx.post, url, json=car_payload, timeout=20)
                for _ in range(bound + extra)
            ]
            # The first answers, while the server is still frozen: the refusals.
            first = itertools.islice(concurrent.futures.as_completed(answers, timeout=10), extra)
            refused = [answer.result() for answer in first]
            podman("unpause", played.names["api"])
            statuses = sorted(a.result().status_code for a in answers)
    finally:
        podman("unpause", played.names["api"], check=False)
    assert [r.status_code for r in refused] == [503] * extra
    assert all(r.headers.get("retry-after") for r in refused)
    assert statuses == [200] * bound + [503] * extra, statuses


@pytest.mark.slow
def test_pod_server_logs_no_onnxruntime_telemetry(played: Pod) -> None:
    """The server in the pod loaded its model and logged nothing about telemetry."""
    output = logs(played.names["api"])
    assert "serving model" in output
    assert "telemetry" not in output.lower(), output
