"""A real server and proxy scraped by a real Prometheus as the Prometheus Operator configures it.

The scrape jobs are those the Operator generates for k8s/components/prometheus-operator's
PodMonitor, transcribed from prometheus-operator's pkg/prometheus/promcfg.go
(`generatePodMonitorConfig`, `initRelabelings`, `generateRunningFilter`,
`appendShardingRelabelingWithLabel`; commit 6adcebc5 of 2026-08-08): `honor_labels: false`,
the pod selector, port, `namespace`/`container`/`pod`, `job` = <namespace>/<name>,
`endpoint` = the port's name, then the PodMonitor's own relabelings and the shard filter. The
targets are what Kubernetes pod discovery gives for the Deployment's pod, one per container
port (k8s/base/deployment.yaml), through `file_sd_configs`: Debian's Prometheus is built
without Kubernetes discovery; the relabelings see the same `__meta_kubernetes_*` labels.

The rules are monitoring/rules as they are, evaluated every second (the only change: the 15 s
intervals become 1 s). Real traffic through the proxy, then load shedding by the server,
must give the HPA's per-pod p95, the availability SLI and the availability page.
"""

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import yaml

from .conftest import free_port, haproxy, serve, wait_for
from .prometheus import Prometheus, fast_config, running

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "haproxy", "prometheus")]

ROOT: Final = Path(__file__).resolve().parents[2]
PODMONITOR: Final = ROOT / "k8s" / "components" / "prometheus-operator" / "podmonitor.yaml"
DEPLOYMENT: Final = ROOT / "k8s" / "base" / "deployment.yaml"
NAMESPACE: Final = "car-price"
POD: Final = "car-price-5d8f7c9b6-x2x4q"
#: The Operator's default job label for the PodMonitor's targets: <namespace>/<name>.
JOB: Final = f"{NAMESPACE}/car-price"
CAR: Final[dict[str, Any]] = json.loads((ROOT / "tests" / "data" / "car.json").read_text("utf-8"))
PAGE: Final = "CarPriceAvailabilityBudgetBurn"


def _relabeling(rule: dict[str, Any]) -> dict[str, Any]:
    """A PodMonitor RelabelConfig in Prometheus' spelling (`generateRelabelConfig`)."""
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return {keys.get(key, key): value for key, value in rule.items()}


def operator_scrape_config(
    monitor: dict[str, Any], index: int, endpoint: dict[str, Any], namespace: str, sd_file: Path
) -> dict[str, Any]:
    """The scrape job `generatePodMonitorConfig` writes for the PodMonitor's `index`th endpoint."""
    name = monitor["metadata"]["name"]
    relabelings: list[dict[str, Any]] = [
        {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
        {
            "action": "drop",
            "source_labels": ["__meta_kubernetes_pod_phase"],
            "regex": "(Failed|Succeeded)",
        },
    ]
    for key, value in sorted(monitor["spec"]["selector"]["matchLabels"].items()):
        relabelings.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_pod_label_{key}",
                    f"__meta_kubernetes_pod_labelpresent_{key}",
                ],
                "regex": f"({value});true",
            }
        )
    port = endpoint["port"]
    relabelings += [
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": port,
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"target_label": "job", "replacement": f"{namespace}/{name}"},
        {"target_label": "endpoint", "replacement": port},
        *(_relabeling(rule) for rule in endpoint.get("relabelings", [])),
        # One shard: $(SHARD) is 0.
        {
            "source_labels": ["__address__", "__tmp_hash"],
            "target_label": "__tmp_hash",
            "regex": "(.+);",
            "replacement": "$1",
            "action": "replace",
        },
        {
            "source_labels": ["__tmp_hash"],
            "target_label": "__tmp_hash",
            "modulus": 1,
            "action": "hashmod",
        },
        {
            "source_labels": ["__tmp_hash", "__tmp_disable_sharding"],
            "regex": "0;|.+;.+",
            "action": "keep",
        },
    ]
    job: dict[str, Any] = {
        "job_name": f"podMonitor/{namespace}/{name}/{index}",
        "honor_labels": endpoint.get("honorLabels", False),
        "file_sd_configs": [{"files": [str(sd_file)]}],
        "metrics_path": endpoint.get("path", "/metrics"),
        "relabel_configs": relabelings,
    }
    if "params" in endpoint:
        job["params"] = endpoint["params"]
    return job


def discovered_pod(addresses: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """Pod discovery's targets for the Deployment's pod: one per container port."""
    deployment = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))
    template = deployment["spec"]["template"]
    pod_labels = {
        f"__meta_kubernetes_pod_{kind}_{key}": value if kind == "label" else "true"
        for key, value in template["metadata"]["labels"].items()
        for kind in ("label", "labelpresent")
    }
    return [
        {
            "targets": [addresses[container["name"], port["name"]]],
            "labels": {
                "__meta_kubernetes_namespace": NAMESPACE,
                "__meta_kubernetes_pod_name": POD,
                "__meta_kubernetes_pod_phase": "Running",
                "__meta_kubernetes_pod_ready": "true",
                "__meta_kubernetes_pod_container_name": container["name"],
                "__meta_kubernetes_pod_container_port_name": port["name"],
                "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                **pod_labels,
            },
        }
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
    ]


@dataclass
class Traffic:
    prometheus: Prometheus
    sent: Counter[int]
    #: When the last request was sent (monotonic).
    ended: float


def _burst(url: str, sent: Counter[int]) -> None:
    def one(_: int) -> int:
        with httpx.Client(timeout=5) as client:
            return client.post(f"{url}/predict", json=CAR).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        sent.update(pool.map(one, range(16)))


@pytest.fixture(scope="module")
def traffic(
    tmp_path_factory: pytest.TempPathFactory, bundle_writer: Callable[..., Path]
) -> Iterator[Traffic]:
    workdir = tmp_path_factory.mktemp("operator-scrape")
    metrics_port = free_port()
    settings = {"QUEUE_MAX": "1", "BATCH_WINDOW_US": "2000"}
    with (
        serve(
            bundle_writer(workdir / "model"), workdir / "server.log", workers=2, **settings
        ) as server,
        haproxy(
            f"127.0.0.1:{server.port}",
            workdir / "haproxy.log",
            max_in_flight=8,
            metrics_port=metrics_port,
        ) as proxy,
    ):
        sd_file = workdir / "pods.json"
        addresses = {
            ("server", "server"): f"127.0.0.1:{server.port}",
            ("proxy", "http"): proxy.removeprefix("http://"),
            ("proxy", "metrics"): f"127.0.0.1:{metrics_port}",
        }
        sd_file.write_text(json.dumps(discovered_pod(addresses)), encoding="utf-8")
        monitor = yaml.safe_load(PODMONITOR.read_text(encoding="utf-8"))
        config = fast_config(
            yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text("utf-8"))
        )
        config["scrape_configs"] = [
            operator_scrape_config(monitor, index, endpoint, NAMESPACE, sd_file)
            for index, endpoint in enumerate(monitor["spec"]["podMetricsEndpoints"])
        ]
        with running(config, workdir) as prometheus:
            # Every series (the 503s too) exists and is scraped before the counted traffic: a
            # counter first scraped at its final value shows no rate.
            warm_up: Counter[int] = Counter()
            while not warm_up[503]:
                _burst(server.url, warm_up)
            shed = 'carprice_http_requests_total{status="503"}'
            wait_for(lambda: bool(prometheus.query(shed)), "a first scrape")
            sent: Counter[int] = Counter()
            with httpx.Client(base_url=proxy, timeout=5) as client:
                for index in range(40):
                    response = client.post("/predict", json={**CAR, "mileage": 1_000 * index})
                    sent[response.status_code] += 1
            # Load shedding, from the server's own admission control, until 5xx are 5 % of all.
            while sent[503] < 0.05 * sum(sent.values()):
                _burst(server.url, sent)
            yield Traffic(prometheus, sent, time.monotonic())


def test_operator_relabelling_keeps_one_target_per_endpoint(traffic: Traffic) -> None:
    """Each job keeps one of the pod's three ports, with the labels the Operator gives it."""
    targets = httpx.get(f"{traffic.prometheus.url}/api/v1/targets", timeout=10).json()
    active = [target["labels"] for target in targets["data"]["activeTargets"]]
    assert {(t["job"], t["endpoint"], t["container"], t["pod"]) for t in active} == {
        (JOB, "metrics", "proxy", POD),
        ("car-price-proxy", "metrics", "proxy", POD),
    }
    # No label of ours was renamed: honor_labels is false, as the Operator leaves it.
    renamed = 'count({__name__=~"carprice_.*", exported_endpoint!=""})'
    assert traffic.prometheus.query(renamed) == [], "series whose `endpoint` was renamed"


def test_per_pod_p95_and_sli_have_data(traffic: Traffic) -> None:
    """The HPA's per-pod p95 and the SLIs are recorded from the Operator-labelled series."""
    query = traffic.prometheus.query
    p95 = f'carprice:request_duration_seconds:p95_per_pod{{namespace="{NAMESPACE}", pod="{POD}"}}'
    wait_for(lambda: bool(query(p95)), "the per-pod p95", timeout=30)
    (sample,) = query(p95)
    assert sample["metric"]["job"] == JOB
    assert 0 < float(sample["value"][1]) <= 0.25
    assert math.isfinite(float(sample["value"][1]))
    sli = f'carprice:sli_availability:ratio_rate5m{{job="{JOB}"}}'
    wait_for(lambda: bool(query(sli)) and float(query(sli)[0]["value"][1]) < 0.99, "the SLI")
    latency = query(f'carprice:sli_latency:ratio_rate5m{{job="{JOB}"}}')
    assert len(latency) == 1
    assert 0 <= float(latency[0]["value"][1]) <= 1
    print(
        f"\nOperator-labelled series: {sample['metric']} p95 {float(sample['value'][1]):.4f} s; "
        f"availability SLI 5m {float(query(sli)[0]['value'][1]):.3f}; sent {dict(traffic.sent)}"
    )


def test_load_shedding_pages(traffic: Traffic) -> None:
    """Real 503s of the server fire the availability burn-rate page under the Operator's labels."""
    firing = f'ALERTS{{alertname="{PAGE}", alertstate="firing"}}'
    wait_for(lambda: bool(traffic.prometheus.query(firing)), f"{PAGE} to fire", timeout=60)
    (alert,) = traffic.prometheus.query(firing)
    assert alert["metric"]["severity"] == "page"
    assert alert["metric"]["job"] == JOB
    print(f"\n{PAGE} firing {time.monotonic() - traffic.ended:.1f} s after the last request")
