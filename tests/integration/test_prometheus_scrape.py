"""A real `car-serve` and its proxy scraped by a real Prometheus loaded with monitoring/rules.

The server runs with a tiny queue (QUEUE_MAX=1) and a 2 ms batching window so that concurrent
bursts are load-shed with 503 queue_full; the per-pod proxy (HAProxy, the repository's config)
in front of it admits one request at a time, so a burst through it gets the proxy's own 503s.
Every metric the rules and the dashboard read then has real samples, and an expression naming
a metric neither exports finds no data.
"""

import contextlib
import json
import math
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ..conftest import wait_for as shared_wait_for
from ..programs import program
from .conftest import free_port, haproxy, stop
from .prometheus import Prometheus, fast_config, running

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "haproxy", "prometheus")]

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "car-price.json"
JOB = "car-price"
PROXY_JOB = "car-price-proxy"
#: The detail of the 503 the proxy makes itself (inference/haproxy/haproxy.cfg, `http-error`).
PROXY_REFUSAL = "proxy queue"
WORKERS = 2
CAR: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "car.json").read_text("utf-8")
)
# Grafana's variables, as the dashboard would expand them for this test's job.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": JOB}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """The shared `wait_for`, 30 s by default and every 0.2 s: scrapes and rules take seconds."""
    shared_wait_for(condition, what, timeout=timeout, poll_s=0.2)


@dataclass
class Stack:
    server_url: str
    proxy_url: str
    metrics_url: str
    model_dir: Path
    bundle_writer: Callable[..., Path]
    prometheus: Prometheus
    #: Requests the server answered, by endpoint and status (its counters must agree).
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Requests the proxy turned away itself (the server never saw them).
    refused_by_proxy: int = 0

    def metric(self, sample: str) -> float:
        """One sample of the server's own /metrics (0 when absent)."""
        text = httpx.get(f"{self.server_url}/metrics", timeout=5).text
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((MONITORING / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


def _dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and annotation, Grafana variables expanded."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    found += [
        (f"annotation {annotation['name']!r}", annotation["expr"])
        for annotation in dashboard["annotations"]["list"]
    ]
    expanded = []
    for where, expr in found:
        query = expr
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"{where}: unexpanded variable in {query}"
        expanded.append((where, query))
    return expanded


def _prometheus_config(metrics_port: int) -> dict[str, Any]:
    """monitoring/prometheus.yml with 1 s intervals, absolute rule paths, the proxy's metrics port.

    Both jobs scrape the proxy's metrics port, as in compose and Kubernetes.
    """
    config = fast_config(yaml.safe_load((MONITORING / "prometheus.yml").read_text("utf-8")))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {JOB, PROXY_JOB}
    for job in jobs.values():
        job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    return config


def _post(stack: Stack, client: httpx.Client, endpoint: str, body: dict[str, Any]) -> int:
    status = client.post(endpoint, json=body).status_code
    stack.sent[endpoint, str(status)] += 1
    return status


def _send_traffic(stack: Stack, singles: int) -> None:
    """Singles, batches, bad input, unknown categories and a burst until one is shed; counted."""
    with httpx.Client(base_url=stack.server_url, timeout=5) as client:
        for index in range(singles):
            assert _post(stack, client, "/predict", {**CAR, "mileage": 1_000 * index}) == 200
        for _ in range(max(singles // 6, 1)):
            assert _post(stack, client, "/predict/batch", {"cars": [CAR] * 5}) == 200
            assert _post(stack, client, "/predict", {**CAR, "mileage": -5}) == 422
            # A brand the model has never seen.
            assert _post(stack, client, "/predict", {**CAR, "brand": "LADA"}) == 200

    def one_request(_: int) -> int:
        with httpx.Client(base_url=stack.server_url, timeout=5) as client:
            return _post(stack, client, "/predict", CAR)

    shed_before = stack.sent["/predict", "503"]
    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(30):
            statuses = list(pool.map(one_request, range(16)))
            assert set(statuses) <= {200, 503}, statuses
            if 503 in statuses:
                break
    assert stack.sent["/predict", "503"] > shed_before, "no burst was load-shed"

    def through_proxy(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.proxy_url, timeout=5) as client:
            return client.post("/predict", json=CAR)

    refused_before = stack.refused_by_proxy
    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(30):
            for response in pool.map(through_proxy, range(16)):
                if response.status_code == 503 and PROXY_REFUSAL in response.text:
                    stack.refused_by_proxy += 1  # the server never saw it
                else:
                    stack.sent["/predict", str(response.status_code)] += 1
            if stack.refused_by_proxy > refused_before:
                break
    assert stack.refused_by_proxy > refused_before, "the proxy refused nothing"


def _reload(stack: Stack) -> None:
    """A good bundle (version 2), then a corrupt model.onnx the server refuses."""
    before = stack.metric('carprice_model_loads_total{outcome="success"}')
    stack.bundle_writer(stack.model_dir, model_version="2", bias=-127.0)
    wait_for(
        lambda: stack.metric('carprice_model_loads_total{outcome="success"}') >= before + WORKERS,
        "both workers to load version 2",
    )
    partial = stack.model_dir / ".model.onnx.corrupt"
    partial.write_bytes(b"definitely not onnx")
    partial.replace(stack.model_dir / "model.onnx")
    wait_for(
        lambda: stack.metric('carprice_model_loads_total{outcome="failure"}') > 0,
        "the server to count the refused bundle",
    )


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, bundle_writer: Callable[..., Path]
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("prometheus-scrape")
    model_dir = bundle_writer(workdir / "model")
    server_port, metrics_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(MODEL_DIR=str(model_dir), RELOAD_POLL_S="0.2", QUEUE_MAX="1")
    # With its prediction log, as the Deployment runs it: the drop counters the alerts read.
    env.update(BATCH_WINDOW_US="2000", PREDICTION_LOG_DIR=str(workdir / "prediction-log"))
    car_serve = program("car-serve")
    with contextlib.ExitStack() as cleanup:  # stops Prometheus, the proxy, then the server
        server = subprocess.Popen(
            [
                car_serve,
                "--port",
                str(server_port),
                "--workers",
                str(WORKERS),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cleanup.callback(stop, server)
        # One request in flight: a burst of 16 through it is mostly the proxy's own 503s.
        proxy_url = cleanup.enter_context(
            haproxy(
                f"127.0.0.1:{server_port}",
                workdir / "haproxy.log",
                max_in_flight=1,
                metrics_port=metrics_port,
            )
        )
        prometheus = cleanup.enter_context(running(_prometheus_config(metrics_port), workdir))
        stack = Stack(
            server_url=f"http://127.0.0.1:{server_port}",
            proxy_url=proxy_url,
            metrics_url=f"http://127.0.0.1:{metrics_port}",
            model_dir=model_dir,
            bundle_writer=bundle_writer,
            prometheus=prometheus,
        )

        def server_ready() -> bool:
            assert server.poll() is None, "car-serve exited early"
            try:
                return httpx.get(f"{stack.server_url}/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(server_ready, "the server", timeout=60)
        # A counter series first scraped at its final value shows no rate: create every series
        # (including the 503s) first, let Prometheus scrape them, then send the traffic.
        _send_traffic(stack, singles=1)
        wait_for(
            lambda: bool(stack.prometheus.query(f'carprice_rejected_total{{job="{JOB}"}}')),
            "Prometheus to scrape the warm-up",
        )
        _send_traffic(stack, singles=60)
        _reload(stack)
        yield stack


def _scraped_counts(prometheus: Prometheus) -> dict[tuple[str, str], float]:
    samples = prometheus.query(
        f'sum by (route, status) (carprice_http_requests_total{{job="{JOB}", route=~"/predict.*"}})'
    )
    return {
        (sample["metric"]["route"], sample["metric"]["status"]): float(sample["value"][1])
        for sample in samples
    }


@pytest.fixture(scope="module")
def settled(stack: Stack) -> Stack:
    """The stack once Prometheus has scraped all traffic and evaluated every recording rule."""
    expected = {key: float(count) for key, count in stack.sent.items()}
    wait_for(lambda: _scraped_counts(stack.prometheus) == expected, "the counters to be scraped")
    records = [rule["record"] for rule in _rules() if "record" in rule]
    deadline = time.monotonic() + 20
    while missing := [r for r in records if not stack.prometheus.query(f'{r}{{job=~"{JOB}.*"}}')]:
        # A rule reading a metric the server does not export (renamed?) never gets data.
        assert time.monotonic() < deadline, f"recording rules without data: {missing}"
        time.sleep(0.2)
    return stack


def test_request_counters_match_what_was_sent(settled: Stack) -> None:
    """Prometheus's request counters per endpoint and status equal the requests the test sent."""
    assert _scraped_counts(settled.prometheus) == {
        key: float(count) for key, count in settled.sent.items()
    }
    rejected = settled.prometheus.query(f'sum(carprice_rejected_total{{job="{JOB}"}})')
    assert float(rejected[0]["value"][1]) == settled.sent["/predict", "503"]


def test_p95_recording_rules_return_latencies(settled: Stack) -> None:
    """The job p95 and the per-pod p95 (the HPA's signal) of /predict hold real latencies."""
    job_p95 = settled.prometheus.query(
        f'carprice:request_duration_seconds:p95{{job="{JOB}", route="/predict"}}'
    )
    per_pod = settled.prometheus.query(
        f'carprice:request_duration_seconds:p95_per_pod{{job="{JOB}"}}'
    )
    assert len(job_p95) == 1
    assert len(per_pod) == 1  # one server, one target
    for sample in (*job_p95, *per_pod):
        value = float(sample["value"][1])
        assert math.isfinite(value)
        assert 0 < value <= 0.25, sample  # within the histogram's finite buckets
    print(f"real p95 of /predict from Prometheus: {float(job_p95[0]['value'][1]):.6f} s")


def test_every_rule_is_healthy_and_every_recording_rule_has_data(settled: Stack) -> None:
    """Prometheus evaluates every rule without error; each recording rule's expression has data."""
    response = httpx.get(f"{settled.prometheus.url}/api/v1/rules", timeout=10).json()
    loaded = [rule for group in response["data"]["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in loaded} == {
        rule.get("record") or rule["alert"] for rule in _rules()
    }
    assert [rule for rule in loaded if rule["health"] != "ok"] == []
    for rule in _rules():
        result = settled.prometheus.query(rule["expr"])  # fails on a PromQL error
        if "record" in rule:
            assert result, f"recording rule {rule['record']} has no data"


def test_every_metric_the_rules_and_dashboard_read_exists(settled: Stack) -> None:
    """Each carprice_* and haproxy_* metric a rule or the dashboard names has scraped series.

    The carprice_* from the server, the haproxy_* from the proxy's exporter with the scopes
    monitoring/prometheus.yml asks for, and each with the labels the rules select.
    """
    text = DASHBOARD.read_text(encoding="utf-8") + "".join(rule["expr"] for rule in _rules())
    names = set(re.findall(r"\bcarprice_[a-z_]+\b", text))
    assert len(names) >= 10
    selectors = set(re.findall(r"\bhaproxy_[a-z_]+\{[^}]*\}", text))
    assert len(selectors) >= 3
    missing = {name for name in names | selectors if not settled.prometheus.query(f"count({name})")}
    assert missing == set(), "metrics the monitoring reads but the server and proxy do not export"
    # The check can fail: a name the server does not export has no series.
    assert settled.prometheus.query("count(carprice_http_requests_totals)") == []


def test_every_dashboard_query_executes_and_returns_data(settled: Stack) -> None:
    """Every panel and annotation query runs; all but yesterday's comparison return data."""
    for where, expr in _dashboard_queries():
        result = settled.prometheus.query(expr)
        if "offset 1d" in expr:  # no data from yesterday in a fresh Prometheus
            continue
        assert result, f"{where}: no data for {expr}"
    jobs = settled.prometheus.query("count by (job) (carprice_model_info)")  # the $job variable
    assert {sample["metric"]["job"] for sample in jobs} == {JOB}


def test_failed_reload_fires_its_alert(settled: Stack) -> None:
    """The corrupt bundle written by the test fires CarPriceModelReloadFailures in Prometheus."""
    query = 'ALERTS{alertname="CarPriceModelReloadFailures", alertstate="firing"}'
    wait_for(lambda: bool(settled.prometheus.query(query)), "the reload-failure alert", 15)
    (alert,) = settled.prometheus.query(query)
    assert alert["metric"]["severity"] == "ticket"
    assert alert["metric"]["job"] == JOB


def test_proxy_refusals_are_counted_and_fire_their_alert(settled: Stack) -> None:
    """The proxy's own 503s reach Prometheus (not the server's counters) and page."""
    refused = settled.prometheus.query(
        f'sum(haproxy_backend_http_responses_total{{job="{PROXY_JOB}", proxy="granian",'
        f' code="5xx"}}) - sum(haproxy_server_http_responses_total{{job="{PROXY_JOB}",'
        ' proxy="granian", code="5xx"})'
    )
    assert float(refused[0]["value"][1]) == settled.refused_by_proxy
    query = 'ALERTS{alertname="CarPriceProxyRefusing", alertstate="firing"}'
    wait_for(lambda: bool(settled.prometheus.query(query)), "the proxy-refusal alert", 15)
    (alert,) = settled.prometheus.query(query)
    assert alert["metric"]["severity"] == "page"
    assert alert["metric"]["job"] == PROXY_JOB


def test_metrics_are_served_on_the_metrics_port_only(settled: Stack) -> None:
    """The proxy's API port answers 404 to both scrape paths; its metrics port serves both."""
    for path in ("/metrics", "/metrics/proxy", "/metrics/anything"):
        assert httpx.get(f"{settled.proxy_url}{path}", timeout=5).status_code == 404, path
    server = httpx.get(f"{settled.metrics_url}/metrics", timeout=5)
    assert "carprice_http_requests_total" in server.text
    own = httpx.get(f"{settled.metrics_url}/metrics/proxy", timeout=5)
    assert "haproxy_backend_http_requests_total" in own.text
    # Nothing else of the server is reachable from the metrics port.
    assert httpx.get(f"{settled.metrics_url}/ready", timeout=5).status_code == 404
