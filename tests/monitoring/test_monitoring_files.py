"""The monitoring files agree with the server, with each other and with the README runbook."""

import json
import re
from pathlib import Path
from typing import Any

import yaml

from inference.metrics import Metrics
from inference.rollout_metrics import RolloutMetrics

from ..proxy_bound import HAPROXY_CFG, exporter_path, max_in_flight_problem

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "car-price.json"
#: Where a pager opens an alert's runbook: README.md as the repository host renders it.
RUNBOOK_BASE = "https://github.com/carprice/car-price/blob/main/README.md"
# Sample-name suffixes of each metric type in the text exposition.
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",), "gauge": ("",)}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((MONITORING / "rules").glob("*.yml"))
        for group in _load(path)["groups"]
        for rule in group["rules"]
    ]


def _panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"])


def test_rules_and_dashboard_read_only_metrics_the_server_exports() -> None:
    """Every carprice_* name in the rules and the dashboard is a sample name the server exports."""
    metrics = Metrics()
    RolloutMetrics(metrics)  # the rollout's metrics, on the same registry (as create_app does)
    exported = {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in SUFFIXES[family.type]
    }
    text = DASHBOARD.read_text(encoding="utf-8") + "".join(rule["expr"] for rule in _rules())
    used = set(re.findall(r"\bcarprice_[a-z_]+\b", text))
    assert len(used) >= 10
    assert used - exported == set()


def test_alerts_and_dashboard_read_only_defined_recording_rules() -> None:
    """Every carprice:* series read by an alert or a panel is recorded by a rule."""
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    text = DASHBOARD.read_text(encoding="utf-8") + "".join(
        rule["expr"] for rule in _rules() if "alert" in rule
    )
    assert set(re.findall(r"\bcarprice:[a-z0-9_:]+", text)) - recorded == set()


def test_every_alert_has_severity_and_a_runbook_entry() -> None:
    """Each alert routes as page or ticket and links, by absolute URL, a README runbook heading."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#+ (\S+)$", readme, re.MULTILINE))
    for rule in (rule for rule in _rules() if "alert" in rule):
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}#{rule['alert'].lower()}"
        assert rule["alert"] in headings, f"README.md has no runbook heading for {rule['alert']}"


def test_dashboard_panels_are_complete() -> None:
    """Panels have unique ids, a description and queries on the dashboard's data source."""
    panels = _panels()
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in (panel for panel in panels if panel["type"] != "row"):
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"], panel["title"]
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_compose_wires_proxy_server_prometheus_and_grafana() -> None:
    """docker-compose mounts files that exist; clients reach the server through the proxy."""
    compose = _load(ROOT / "docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"proxy", "server", "prometheus", "grafana"}
    assert services["server"]["build"]["dockerfile"] == "inference/Dockerfile"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(("./monitoring", "./inference")):
                assert (ROOT / source).is_file() or (ROOT / source).is_dir(), volume
    jobs = {job["job_name"]: job for job in _load(MONITORING / "prometheus.yml")["scrape_configs"]}
    assert set(jobs) == {"car-price", "car-price-proxy"}
    assert "8000" in services["server"]["expose"]
    assert "ports" not in services["server"]  # only through the proxy
    proxy = services["proxy"]
    # The official image reads this path; the file is the one the integration tests run.
    assert (
        "./inference/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
        in (proxy["volumes"])
    )
    assert proxy["environment"]["PROXY_UPSTREAM"] == "server:8000"
    assert f"8000:{proxy['environment']['PROXY_PORT']}" in proxy["ports"]
    # Both jobs on the proxy's metrics port, which no host port publishes.
    metrics_port = proxy["environment"]["PROXY_METRICS_PORT"]
    for job in jobs.values():
        assert job["static_configs"] == [{"targets": [f"proxy:{metrics_port}"]}]
    assert not any(port.endswith(f":{metrics_port}") for port in proxy["ports"])
    assert jobs["car-price-proxy"]["metrics_path"] == exporter_path(
        HAPROXY_CFG.read_text(encoding="utf-8")
    )
    workers = services["server"]["environment"]["WORKERS"]
    bound = proxy["environment"]["PROXY_MAX_IN_FLIGHT"]
    assert max_in_flight_problem(bound, workers, "docker-compose proxy") is None
    datasources = _load(MONITORING / "grafana/provisioning/datasources/prometheus.yml")
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


def test_no_rule_reads_raw_series_over_more_than_an_hour() -> None:
    """Windows beyond 1 h read recorded rates, not every pod's raw samples at each evaluation.

    The price-shift alert's 1 h rate of yesterday (`offset 1d`) is an hour of raw samples too.
    """
    seconds = {"m": 60, "h": 3600, "d": 86400}
    long_reads = [
        (rule.get("record") or rule["alert"], metric, window)
        for rule in _rules()
        for metric, window in re.findall(
            r"\b(carprice_[a-z_]+)\{[^}]*\}\[(\d+[mhd])\]", rule["expr"]
        )
        if int(window[:-1]) * seconds[window[-1]] > 3600
    ]
    assert long_reads == []


def slo_fixture_problems(tests_dir: Path, le: str) -> list[str]:
    """Promtool fixtures with /predict latency buckets but none at the SLO's bucket `le`."""
    bucket = re.compile(r'request_duration_seconds_bucket\{[^}]*route="/predict"[^}]*le="([^"]+)"')
    problems = []
    for path in sorted(tests_dir.glob("*.yml")):
        found = set(bucket.findall(path.read_text(encoding="utf-8")))
        if found and le not in found:
            problems.append(
                f"{path.name}: /predict latency buckets {sorted(found)} lack the SLO's "
                f'le="{le}" (inference/src/inference/slo.py): its worked examples are written '
                "for another SLO and must be rewritten with it"
            )
    return problems


def test_promtool_fixtures_are_written_at_the_slo_bucket() -> None:
    """Every rule-test fixture with /predict latency buckets has the SLO's bucket among them."""
    from prometheus_client.utils import floatToGoString

    from inference.slo import LATENCY_THRESHOLD_S

    assert slo_fixture_problems(MONITORING / "tests", floatToGoString(LATENCY_THRESHOLD_S)) == []


def test_a_fixture_left_at_another_slo_is_named(tmp_path: Path) -> None:
    """The check names the fixture file and the bucket it lacks when the SLO moves without it."""
    source = MONITORING / "tests" / "slo_alerts_test.yml"
    (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (problem,) = slo_fixture_problems(tmp_path, "0.025")
    assert problem.startswith("slo_alerts_test.yml: /predict latency buckets ['0.01'")
    assert 'lack the SLO\'s le="0.025"' in problem
