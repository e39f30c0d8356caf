"""The k8s/ manifests render, validate against their schemas and agree with the code they run."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from k8s import render

from ..programs import program
from .manifests import (
    ADAPTER_VALUES,
    K8S,
    PROXY,
    RULES,
    adapter_rules,
    broken_copy,
    by_kind,
    container_env,
    containers,
    edit,
    metric_problems,
    newest_benchmark,
    overlays,
    pod_problems,
    port_problems,
    probe_problems,
    proxy_config,
    proxy_problems,
    quantity,
    recorded,
    render_overlay,
    rendered,
    schema_problems,
    scrape_problems,
    selector_problems,
    settings_problems,
    volume_problems,
)

OVERLAYS = overlays()


def test_the_overlays_are_the_documented_ones() -> None:
    """The overlays are dev (minikube), prod and KEDA, each documented in the README."""
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    assert set(OVERLAYS) == {"dev", "prod", "keda"}
    for name in OVERLAYS:
        assert f"overlays/{name}" in readme


@pytest.mark.needs("kubectl")
@pytest.mark.parametrize("name", OVERLAYS)
def test_every_object_validates_against_its_schema(name: str) -> None:
    """Built-in kinds against Kubernetes' schemas, custom ones against the vendored CRDs."""
    objects = rendered(name)
    assert objects
    assert [problem for obj in objects for problem in schema_problems(obj)] == []


@pytest.mark.needs("kubectl")
@pytest.mark.parametrize("name", OVERLAYS)
def test_cross_references_hold(name: str) -> None:
    """Selectors, port names, probe paths, settings, volumes and sizing agree with the code."""
    objects = rendered(name)
    problems = [
        *selector_problems(objects),
        *port_problems(objects),
        *scrape_problems(objects),
        *probe_problems(objects),
        *settings_problems(objects),
        *volume_problems(objects),
        *pod_problems(objects, newest_benchmark()),
        *proxy_problems(objects),
        *metric_problems(objects, adapter_rules(), recorded()),
    ]
    assert problems == []


@pytest.mark.needs("kubectl")
def test_prod_autoscales_on_the_recorded_p95_and_cpu() -> None:
    """The prod overlay has the HPA on p95 and CPU, and the Operator's objects."""
    objects = rendered("prod")
    (hpa,) = by_kind(objects, "HorizontalPodAutoscaler")
    assert {metric["type"] for metric in hpa["spec"]["metrics"]} == {"Pods", "ContainerResource"}
    # CPU of the server container alone: the proxy's request would dilute it.
    (cpu,) = [m for m in hpa["spec"]["metrics"] if m["type"] == "ContainerResource"]
    assert cpu["containerResource"]["container"] in containers(objects)
    assert cpu["containerResource"]["container"] != PROXY
    assert {"scaleUp", "scaleDown"} <= hpa["spec"]["behavior"].keys()
    (rule,) = by_kind(objects, "PrometheusRule")
    rule_names = {
        r.get("record") or r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]
    }
    assert recorded() <= rule_names
    assert by_kind(objects, "PodMonitor")


@pytest.mark.needs("kubectl")
def test_keda_replaces_the_hpa_with_the_same_bounds_and_target() -> None:
    """The KEDA overlay has no HPA of its own and scales like the base's HPA."""
    objects = rendered("keda")
    assert by_kind(objects, "HorizontalPodAutoscaler") == []
    (scaled,) = by_kind(objects, "ScaledObject")
    (hpa,) = by_kind(rendered("prod"), "HorizontalPodAutoscaler")
    spec = scaled["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        hpa["spec"]["minReplicas"],
        hpa["spec"]["maxReplicas"],
    )
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["spec"]["behavior"]
    (pods_metric,) = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    (trigger,) = [t for t in spec["triggers"] if t["type"] == "prometheus"]
    target = quantity(pods_metric["pods"]["target"]["averageValue"])
    assert float(trigger["metadata"]["threshold"]) == pytest.approx(target)
    (cpu_trigger,) = [t for t in spec["triggers"] if t["type"] == "cpu"]
    (cpu_metric,) = [m for m in hpa["spec"]["metrics"] if m["type"] == "ContainerResource"]
    assert cpu_trigger["metadata"]["containerName"] == cpu_metric["containerResource"]["container"]


@pytest.mark.needs("kubectl")
def test_dev_is_one_local_pod_without_autoscaling() -> None:
    """The dev overlay runs one pod of the minikube-built image, no HPA, no Operator objects."""
    objects = rendered("dev")
    (deployment,) = by_kind(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert containers(objects)["server"]["imagePullPolicy"] == "Never"
    assert not {"HorizontalPodAutoscaler", "PodMonitor", "PrometheusRule"} & {
        obj["kind"] for obj in objects
    }


@pytest.mark.needs("kubectl", "haproxy")
@pytest.mark.parametrize("name", OVERLAYS)
def test_proxy_config_is_valid_haproxy_with_the_pods_environment(name: str, tmp_path: Path) -> None:
    """`haproxy -c` accepts the rendered config with the proxy container's environment."""
    binary = program("haproxy")
    objects = rendered(name)
    config = proxy_config(objects)
    assert config is not None
    path = tmp_path / "haproxy.cfg"
    path.write_text(config, encoding="utf-8")
    env = {**os.environ, **container_env(containers(objects)[PROXY])}
    done = subprocess.run(
        [binary, "-c", "-f", str(path)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.needs("kubectl")
def test_podmonitor_scrapes_like_the_plain_prometheus_config() -> None:
    """The PodMonitor's interval is the scrape interval the p95 rule's 1 m window assumes."""
    config = yaml.safe_load(
        (RULES.parent / "prometheus-kubernetes.yml").read_text(encoding="utf-8")
    )
    (monitor,) = by_kind(rendered("prod"), "PodMonitor")
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert [endpoint["interval"] for endpoint in endpoints] == [
        config["global"]["scrape_interval"]
    ] * len(config["scrape_configs"])
    # The same paths and exporter scopes as the plain config's jobs.
    assert [(e["path"], e.get("params")) for e in endpoints] == [
        (job["metrics_path"], job.get("params")) for job in config["scrape_configs"]
    ]


# --- bad input: each fails with the name of the problem ---------------------------------------


@pytest.mark.needs("kubectl")
def test_missing_resource_fails_the_render_naming_it(tmp_path: Path) -> None:
    """An overlay listing a file that is not there fails to render, naming the file."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(
        k8s_dir / "overlays" / "prod" / "kustomization.yaml",
        "  - ../../base\n",
        "  - ../../base\n  - gone.yaml\n",
    )
    with pytest.raises(render.RenderError, match=r"gone\.yaml"):
        render_overlay("prod", k8s_dir)


@pytest.mark.needs("kubectl")
def test_hpa_metric_no_adapter_rule_serves_is_named(tmp_path: Path) -> None:
    """An HPA reading a metric that no adapter rule serves is reported by that metric's name."""
    k8s_dir, rules_dir = broken_copy(tmp_path)
    edit(
        k8s_dir / "base" / "hpa.yaml",
        "name: carprice_request_duration_seconds_p95_per_pod",
        "name: carprice_request_duration_seconds_p99_per_pod",
    )
    problems = metric_problems(
        render_overlay("prod", k8s_dir), adapter_rules(k8s_dir), recorded(rules_dir)
    )
    assert problems
    assert all("carprice_request_duration_seconds_p99_per_pod" in p for p in problems)


@pytest.mark.needs("kubectl")
def test_hpa_metric_whose_series_no_rule_records_is_named(tmp_path: Path) -> None:
    """Without the recording rule, the HPA's metric is reported with the missing series' name."""
    k8s_dir, rules_dir = broken_copy(tmp_path)
    edit(
        rules_dir / "recording.yml",
        "- record: carprice:request_duration_seconds:p95_per_pod",
        "- record: carprice:request_duration_seconds:p95_by_pod",
    )
    for overlay in ("prod", "keda"):
        problems = metric_problems(
            render_overlay(overlay, k8s_dir), adapter_rules(k8s_dir), recorded(rules_dir)
        )
        assert problems, overlay
        assert all("carprice:request_duration_seconds:p95_per_pod" in p for p in problems)


@pytest.mark.needs("kubectl")
def test_probe_path_the_app_does_not_serve_is_named(tmp_path: Path) -> None:
    """A readiness probe on a path the app has no GET route for is reported with the path."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(k8s_dir / "base" / "deployment.yaml", "path: /ready\n", "path: /readyz\n")
    problems = probe_problems(render_overlay("prod", k8s_dir))
    assert problems == ["server readinessProbe: path /readyz is not a GET route of the app"]


@pytest.mark.needs("kubectl")
def test_model_dir_off_the_default_serving_folder_is_named(tmp_path: Path) -> None:
    """MODEL_DIR not ending in the default serving folder (below data/) is named with both."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(k8s_dir / "base" / "server.env", "MODEL_DIR=/data/model\n", "MODEL_DIR=/data/served\n")
    problems = volume_problems(render_overlay("prod", k8s_dir))
    assert "server: MODEL_DIR /data/served does not end in model" in problems


@pytest.mark.needs("kubectl")
def test_setting_the_server_does_not_have_is_named(tmp_path: Path) -> None:
    """A ConfigMap key that is no server setting, or repeats a default, is reported by name."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(
        k8s_dir / "base" / "server.env",
        "WORKERS=1\n",
        "WORKERS=1\nWORKER_COUNT=2\nBATCH_LIMIT=1000\n",
    )
    problems = settings_problems(render_overlay("prod", k8s_dir))
    assert len(problems) == 2
    assert any("WORKER_COUNT is not a server setting" in p for p in problems)
    assert any("BATCH_LIMIT=1000 is already the default" in p for p in problems)


@pytest.mark.needs("kubectl")
def test_object_breaking_its_schema_is_named(tmp_path: Path) -> None:
    """A misspelt field fails schema validation, built-in or custom, naming the object."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(k8s_dir / "base" / "pdb.yaml", "maxUnavailable: 1", "maxUnavailble: 1")
    edit(
        k8s_dir / "components" / "prometheus-operator" / "podmonitor.yaml", "interval:", "intervl:"
    )
    objects = render_overlay("prod", k8s_dir)
    problems = [problem for obj in objects for problem in schema_problems(obj)]
    assert len(problems) == 2
    assert problems[0].startswith("PodDisruptionBudget/car-price:")
    assert "maxUnavailble" in problems[0]
    assert problems[1].startswith("PodMonitor/car-price:")
    assert "intervl" in problems[1]


@pytest.mark.needs("kubectl")
def test_selector_port_and_grace_mistakes_are_named(tmp_path: Path) -> None:
    """A Service selecting no pod or naming ports wrongly, a too-short grace period: named."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(
        k8s_dir / "base" / "service.yaml",
        "  selector:\n    app: car-price",
        "  selector:\n    app: car-prices",
    )
    edit(k8s_dir / "base" / "service.yaml", "targetPort: http", "targetPort: web")
    edit(k8s_dir / "base" / "service.yaml", "- name: http", "- name: metrics")
    edit(
        k8s_dir / "base" / "deployment.yaml",
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds: 10",
    )
    objects = render_overlay("prod", k8s_dir)
    assert selector_problems(objects) == [
        "Service/car-price: selector {'app': 'car-prices'} matches no pod template"
    ]
    assert port_problems(objects) == [
        "Service/car-price: port 'web' is not a port of the proxy container"
    ]
    assert scrape_problems(objects) == ["Service/car-price: exposes the scraped port metrics"]
    (grace,) = pod_problems(objects, newest_benchmark())
    assert grace.startswith("terminationGracePeriodSeconds 10 <= preStop 5 s")


@pytest.mark.needs("kubectl")
def test_scrape_path_the_proxy_does_not_serve_is_named(tmp_path: Path) -> None:
    """A PodMonitor path that is neither round the bound nor the proxy's exporter is reported."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(
        k8s_dir / "components" / "prometheus-operator" / "podmonitor.yaml",
        "path: /metrics/proxy",
        "path: /proxy-metrics",
    )
    assert scrape_problems(render_overlay("prod", k8s_dir)) == [
        "proxy: scrape paths ['/proxy-metrics'] are not served on its metrics port"
    ]


@pytest.mark.needs("kubectl")
def test_proxy_upstream_off_the_server_port_is_named(tmp_path: Path) -> None:
    """A proxy forwarding to a port the server does not listen on is reported with the address."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(k8s_dir / "base" / "deployment.yaml", "value: 127.0.0.1:8000", "value: 127.0.0.1:8001")
    assert proxy_problems(render_overlay("prod", k8s_dir)) == [
        "proxy: PROXY_UPSTREAM 127.0.0.1:8001 is not the server container's port 127.0.0.1:8000"
    ]


@pytest.mark.needs("kubectl")
def test_proxy_config_map_missing_is_named(tmp_path: Path) -> None:
    """Without the generated ConfigMap, the proxy's mount is reported with the name it wants."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(
        k8s_dir / "base" / "kustomization.yaml",
        "  - name: car-price-proxy\n    files:\n      - haproxy.cfg\n",
        "",
    )
    assert proxy_problems(render_overlay("prod", k8s_dir)) == [
        "proxy: /usr/local/etc/haproxy/haproxy.cfg is not a key of a rendered ConfigMap "
        "(mounts car-price-proxy)"
    ]


@pytest.mark.needs("kubectl")
def test_proxy_bound_not_following_workers_is_named(tmp_path: Path) -> None:
    """Two workers with the one-worker bound: PROXY_MAX_IN_FLIGHT is reported with the rule."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(k8s_dir / "base" / "server.env", "WORKERS=1\n", "WORKERS=2\n")
    problems = proxy_problems(render_overlay("prod", k8s_dir))
    assert problems == ["proxy: PROXY_MAX_IN_FLIGHT=4, not 4 per worker x WORKERS=2 = 8"]


def test_adapter_rule_merges_into_the_platforms_adapter() -> None:
    """The adapter's values add our rule to rules.custom and set nothing else.

    prometheus-community/prometheus-adapter appends rules.custom to its default rules; any
    other key (rules.default: false, rules.existing, a ConfigMap of our own) would replace or
    drop the platform's rules for every other HPA in the cluster.
    """
    values = yaml.safe_load(ADAPTER_VALUES.read_text(encoding="utf-8"))
    assert list(values) == ["rules"]
    assert list(values["rules"]) == ["custom"]
    assert [rule["name"]["as"] for rule in values["rules"]["custom"]] == [
        "carprice_request_duration_seconds_p95_per_pod"
    ]
    assert not (ADAPTER_VALUES.parent / "kustomization.yaml").exists()
