"""Rendering and checks of the k8s/ manifests against the schemas and the code they deploy.

Each check takes what it reads as arguments (rendered objects, the rules folder) so that the
bad-input tests can run it on broken copies; each returns its problems, every one naming the
object and the offending name, and an empty list when there is none.
"""

import re
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
import kubernetes_validate
import msgspec
import yaml

from car_price.settings import Settings as DagSettings
from inference.app import create_app, drain_seconds
from inference.settings import Settings
from k8s import generate, render
from shared_schema.serving_folder import DEFAULT_SERVING_FOLDER

from ..proxy_bound import HAPROXY_CFG, exporter_path, max_in_flight_problem

ROOT: Final = Path(__file__).resolve().parents[2]
K8S: Final = ROOT / "k8s"
RULES: Final = ROOT / generate.RULES_SOURCE
#: The Kubernetes version every built-in object is validated against: the oldest the manifests
#: need (the preStop `sleep` action is GA from 1.34).
KUBERNETES_VERSION: Final = "1.34.0"
#: prometheus-adapter's rule, as values to merge into the platform's adapter release.
ADAPTER_VALUES: Final = K8S / "prometheus-adapter" / "values.yaml"
#: The per-pod proxy's container, and its service in docker-compose.yml.
PROXY: Final = "proxy"

Manifest = dict[str, Any]
Objects = tuple[Manifest, ...] | list[Manifest]


# --- rendering -------------------------------------------------------------------------------


def overlays(k8s_dir: Path = K8S) -> list[str]:
    """The overlays: every folder of k8s/overlays with a kustomization."""
    return sorted(
        p.name for p in (k8s_dir / "overlays").iterdir() if (p / "kustomization.yaml").exists()
    )


def render_overlay(name: str, k8s_dir: Path = K8S) -> list[Manifest]:
    """One overlay as `make manifests` (plain `kubectl kustomize`) renders it."""
    return render.kustomize(k8s_dir / "overlays" / name)


@cache
def rendered(name: str) -> tuple[Manifest, ...]:
    """The repository's overlay `name`, rendered once per session."""
    return tuple(render.kustomize(K8S / "overlays" / name))


def adapter_rules(k8s_dir: Path = K8S) -> list[dict[str, Any]]:
    """prometheus-adapter's rules: `rules.custom` of the chart values in prometheus-adapter/."""
    path = k8s_dir / ADAPTER_VALUES.relative_to(K8S)
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]["custom"])


def recorded(rules_dir: Path = RULES) -> set[str]:
    """The series the recording rules record."""
    return {
        rule["record"]
        for path in sorted(rules_dir.glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def by_kind(
    objects: Iterator[Manifest] | tuple[Manifest, ...] | list[Manifest], kind: str
) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def ref(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def broken_copy(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of k8s/ (its generated copies included) and monitoring/rules/ to break.

    Returns (k8s dir, rules dir).
    """
    k8s_dir = tmp_path / "k8s"
    shutil.copytree(K8S, k8s_dir, ignore=shutil.ignore_patterns("__pycache__"))
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES, rules_dir)
    return k8s_dir, rules_dir


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` (which must be there) with `new` in a copied file."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# --- schemas ---------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields rejected where the API server rejects them.

    That is, as kubectl's strict field validation does: in objects with `properties` that do
    not preserve unknown fields.
    """
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str], Any]:
    """The vendored CRD schemas (k8s/crds/) by (apiVersion, kind)."""
    schemas = {}
    for path in sorted((K8S / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        schemas[(f"{doc['group']}/{doc['version']}", doc["kind"])] = _strict(doc["openAPIV3Schema"])
    return schemas


def schema_problems(obj: Manifest) -> list[str]:
    """A built-in object against Kubernetes' schema, a custom one against its CRD's."""
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is not None:
        validator = jsonschema.Draft7Validator(schema)
        return [
            f"{ref(obj)}: {'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{ref(obj)}: no schema for {obj['apiVersion']} {obj['kind']} (vendor its CRD)"]
    except kubernetes_validate.ValidationError as error:
        path = ".".join(map(str, error.path))
        return [f"{ref(obj)}: {path}: {error.message}"]
    return []


# --- what the pods run -----------------------------------------------------------------------


def containers(objects: tuple[Manifest, ...] | list[Manifest]) -> dict[str, Manifest]:
    """The Deployment's containers by name."""
    (deployment,) = by_kind(objects, "Deployment")
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def server_container(objects: tuple[Manifest, ...] | list[Manifest]) -> tuple[Manifest, Manifest]:
    """The Deployment and its `server` container."""
    (deployment,) = by_kind(objects, "Deployment")
    return deployment, containers(objects)["server"]


def container_env(container: Manifest) -> dict[str, str]:
    """A container's literal `env` values."""
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def image_env() -> dict[str, str]:
    """The ENV the inference image's final stage sets (inference/Dockerfile)."""
    text = (ROOT / "inference" / "Dockerfile").read_text(encoding="utf-8")
    final_stage = text.rsplit("\nFROM ", 1)[1].replace("\\\n", " ")
    return {
        name: value
        for line in final_stage.splitlines()
        if line.startswith("ENV ")
        for name, value in re.findall(r"\b([A-Z_]+)=(\S+)", line)
    }


def server_env(objects: tuple[Manifest, ...] | list[Manifest]) -> dict[str, str]:
    """The server's environment in a pod: the image's ENV, the ConfigMap's, the container's."""
    _, container = server_container(objects)
    maps = {cm["metadata"]["name"]: cm for cm in by_kind(objects, "ConfigMap")}
    env = image_env()
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]].get("data", {}))
    env.update(container_env(container))
    return env


@cache
def get_routes() -> frozenset[str]:
    """The paths the app answers GET on, read from the app itself."""
    app = create_app(Settings())
    return frozenset(route.path for route in app.routes if "GET" in getattr(route, "methods", ()))


def compose_proxy() -> dict[str, Any]:
    """The proxy's service in docker-compose.yml: the image and config path the sidecar shares."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return dict(compose["services"][PROXY])


def compose_config_path() -> str:
    """Where the proxy's image reads its config, as docker-compose.yml mounts it."""
    (target,) = [
        volume.split(":")[1]
        for volume in compose_proxy()["volumes"]
        if volume.startswith(f"./{HAPROXY_CFG.relative_to(ROOT).as_posix()}:")
    ]
    return target


def proxy_config(objects: Objects) -> str | None:
    """The config the proxy container reads: the rendered ConfigMap's key it mounts, if any."""
    (deployment,) = by_kind(objects, "Deployment")
    proxy = containers(objects).get(PROXY)
    mount = {m["mountPath"]: m for m in (proxy or {}).get("volumeMounts", [])}.get(
        compose_config_path()
    )
    if mount is None:
        return None
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    name = volumes[mount["name"]].get("configMap", {}).get("name")
    maps = {cm["metadata"]["name"]: cm for cm in by_kind(objects, "ConfigMap")}
    data = maps.get(name, {}).get("data", {})
    return data.get(mount.get("subPath")) if isinstance(data, dict) else None


def dag_settings() -> DagSettings:
    """The Airflow DAGs' defaults: their namespace and claims are the server's too."""
    return DagSettings()


def msgspec_default(field: str) -> Any:
    """A Settings field's declared default (None for a machine-dependent default factory)."""
    info = {f.name: f for f in msgspec.structs.fields(Settings)}[field]
    return None if info.default is msgspec.NODEFAULT else info.default


# --- cross-references ------------------------------------------------------------------------


def pod_labels(objects: Objects) -> list[dict[str, str]]:
    return [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(objects, "Deployment")]


def selector_problems(objects: Objects) -> list[str]:
    """Every selector picks the Deployment's pods; every scale target is a rendered Deployment."""
    problems = []
    pods = pod_labels(objects)

    def check(owner: str, selector: dict[str, str]) -> None:
        if not any(selector.items() <= labels.items() for labels in pods):
            problems.append(f"{owner}: selector {selector} matches no pod template")

    for deployment in by_kind(objects, "Deployment"):
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        if not spec["selector"]["matchLabels"].items() <= labels.items():
            problems.append(f"{ref(deployment)}: selector does not match its own pod template")
        for constraint in spec["template"]["spec"].get("topologySpreadConstraints", []):
            check(f"{ref(deployment)} topology spread", constraint["labelSelector"]["matchLabels"])
    for service in by_kind(objects, "Service"):
        check(ref(service), service["spec"]["selector"])
    for kind, path in [
        ("PodDisruptionBudget", ("selector",)),
        ("NetworkPolicy", ("podSelector",)),
        ("PodMonitor", ("selector",)),
    ]:
        for obj in by_kind(objects, kind):
            check(ref(obj), obj["spec"][path[0]]["matchLabels"])
    deployments = {d["metadata"]["name"] for d in by_kind(objects, "Deployment")}
    for obj in by_kind(objects, "HorizontalPodAutoscaler") + by_kind(objects, "ScaledObject"):
        target = obj["spec"]["scaleTargetRef"]
        if target["kind"] != "Deployment" or target["name"] not in deployments:
            problems.append(f"{ref(obj)}: scales {target['kind']}/{target['name']}, not rendered")
    return problems


def scrape_config() -> dict[str, Any]:
    """monitoring/prometheus-kubernetes.yml, which scrapes the pods without the Operator."""
    path = ROOT / "monitoring" / "prometheus-kubernetes.yml"
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def _kept(source_label: str) -> re.Pattern[str]:
    """The regex every scrape job keeps `source_label` by (the server's and the proxy's)."""
    (regex,) = {
        r["regex"]
        for job in scrape_config()["scrape_configs"]
        for r in job["relabel_configs"]
        if r.get("action") == "keep" and r["source_labels"] == [source_label]
    }
    return re.compile(regex)


def metrics_paths(config: str) -> set[str]:
    """The paths the proxy's `metrics` frontend serves: its exporter and the server's /metrics."""
    section = re.search(r"^frontend metrics\n((?:[ \t].*\n|\n)*)", config, re.MULTILINE)
    if section is None:
        return set()
    body = section.group(1)
    passed = re.findall(r"deny_status 404 unless \{ path (\S+) \}", body)
    return {*passed, *filter(None, [exporter_path(body)])}


def scrape_problems(objects: Objects) -> list[str]:
    """The pods carry the label and port name prometheus-kubernetes.yml keeps; no Service has it.

    One port of the pod matches (one target per pod): the proxy's, whose `metrics` frontend
    serves the scrape paths on slots of their own. The Service does not expose that port and
    the NetworkPolicy admits only Prometheus' pods to it.
    """
    problems = []
    port_name = _kept("__meta_kubernetes_pod_container_port_name")
    scraped = [
        (name, port["name"])
        for name, container in containers(objects).items()
        for port in container.get("ports", [])
        if port_name.fullmatch(port["name"])
    ]
    if [name for name, _ in scraped] != [PROXY]:
        problems.append(f"container ports matching {port_name.pattern}: {scraped}, not the proxy's")
    for service in by_kind(objects, "Service"):
        for port in service["spec"]["ports"]:
            if port_name.fullmatch(port["name"]) or port_name.fullmatch(str(port["targetPort"])):
                problems.append(f"{ref(service)}: exposes the scraped port {port_name.pattern}")
    for policy in by_kind(objects, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            scraped_here = any(port_name.fullmatch(str(p["port"])) for p in rule.get("ports", []))
            if scraped_here and any("podSelector" not in peer for peer in rule.get("from", [])):
                problems.append(
                    f"{ref(policy)}: admits more than Prometheus' pods to the scraped port"
                )
    app = _kept("__meta_kubernetes_pod_label_app")
    if not any(app.fullmatch(labels.get("app", "")) for labels in pod_labels(objects)):
        problems.append(f"no pod label app matches {app.pattern}")
    config = proxy_config(objects)
    paths = {job["metrics_path"] for job in scrape_config()["scrape_configs"]} | {
        endpoint["path"]
        for monitor in by_kind(objects, "PodMonitor")
        for endpoint in monitor["spec"]["podMetricsEndpoints"]
    }
    if config is not None:
        # Served by the metrics frontend: the server's /metrics, or the proxy's own exporter.
        served = metrics_paths(config)
        if not paths <= served:
            problems.append(
                f"proxy: scrape paths {sorted(paths - served)} are not served on its metrics port"
            )
    return problems


def port_problems(objects: Objects) -> list[str]:
    """Named ports resolve to the right container's: the server's PORT, the proxy's `http`.

    The Service and the NetworkPolicy admit traffic to the proxy only; each probe names a port
    of its own container.
    """
    problems = []
    pod = containers(objects)
    ports = {
        name: {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        for name, container in pod.items()
    }
    wanted = Settings.from_env(server_env(objects)).port
    if wanted not in ports["server"].values():
        problems.append(f"container server: no port is the server's PORT {wanted}")
    api = ports.get(PROXY, {})

    def check(owner: str, port: Any) -> None:
        if port not in api and port not in api.values():
            problems.append(f"{owner}: port {port!r} is not a port of the proxy container")

    for service in by_kind(objects, "Service"):
        for port in service["spec"]["ports"]:
            check(ref(service), port["targetPort"])
    for policy in by_kind(objects, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                check(ref(policy), port["port"])
    for monitor in by_kind(objects, "PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            check(ref(monitor), endpoint["port"])
    for name, container in pod.items():
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                action = container[probe].get("httpGet") or container[probe].get("tcpSocket")
                if action["port"] not in ports[name]:
                    problems.append(f"{name} {probe}: port {action['port']!r} is not its own")
    return problems


def probe_problems(objects: Objects) -> list[str]:
    """Every probe's path is a GET route of the app (read from `create_app`)."""
    _, container = server_container(objects)
    problems = []
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if probe not in container:
            problems.append(f"server has no {probe}")
            continue
        path = container[probe]["httpGet"]["path"]
        if path not in get_routes():
            problems.append(f"server {probe}: path {path} is not a GET route of the app")
    return problems


def quantity(value: str) -> float:
    """A Kubernetes quantity as a number (the suffixes the manifests use)."""
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in suffixes.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


SERIES: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def adapter_metrics(adapter: list[dict[str, Any]]) -> dict[str, str]:
    """The custom metrics prometheus-adapter serves, each with the series it reads."""
    served = {}
    for rule in adapter:
        series = SERIES.match(rule["seriesQuery"].strip("'\""))
        source = series.group(0) if series else rule["seriesQuery"]
        served[rule["name"].get("as") or source] = source
    return served


def metric_problems(
    objects: Objects, adapter: list[dict[str, Any]], records: set[str]
) -> list[str]:
    """Every metric the autoscalers read comes from a series a recording rule records.

    The HPA's Pods metrics through a prometheus-adapter rule; KEDA's query directly.
    """
    served = adapter_metrics(adapter)
    problems = [
        f"prometheus-adapter rule {name}: {series} is recorded by no rule"
        for name, series in served.items()
        if series not in records
    ]
    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        for metric in hpa["spec"]["metrics"]:
            name = metric["pods"]["metric"]["name"] if metric["type"] == "Pods" else None
            if name is not None and name not in served:
                problems.append(
                    f"{ref(hpa)}: metric {name} is served by no prometheus-adapter rule"
                )
            elif name is not None and served[name] not in records:
                problems.append(
                    f"{ref(hpa)}: metric {name} comes from {served[name]}, which no rule records"
                )
    for scaled in by_kind(objects, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            query = trigger["metadata"]["query"] if trigger["type"] == "prometheus" else ""
            for series in sorted(set(re.findall(r"\bcarprice:[a-z0-9_:]+", query)) - records):
                problems.append(f"{ref(scaled)}: query reads {series}, which no rule records")
            namespaces = set(re.findall(r'namespace="([^"]+)"', query))
            if query and namespaces != {scaled["metadata"]["namespace"]}:
                problems.append(f"{ref(scaled)}: query filters namespaces {namespaces}")
    return problems


def settings_problems(objects: Objects) -> list[str]:
    """The ConfigMap sets real server settings, each only where it differs, all valid."""
    problems = []
    image = image_env()
    _, container = server_container(objects)
    env_maps = {source["configMapRef"]["name"] for source in container.get("envFrom", [])}
    for config_map in by_kind(objects, "ConfigMap"):
        if config_map["metadata"]["name"] not in env_maps:
            continue
        for key, value in config_map.get("data", {}).items():
            field = key.lower()
            if field not in Settings.__struct_fields__:
                problems.append(f"{ref(config_map)}: {key} is not a server setting")
                continue
            parsed = getattr(Settings.from_env({key: value}), field)
            if parsed == msgspec_default(field) or image.get(key) == value:
                problems.append(f"{ref(config_map)}: {key}={value} is already the default")
    try:
        Settings.from_env(server_env(objects))
    except ValueError as error:
        problems.append(f"server environment: {error}")
    return problems


def volume_problems(objects: Objects) -> list[str]:
    """The model and the prediction log are mounted where the server reads and writes them.

    From the claims (and the folder) the Airflow DAGs write and read, in their namespace.
    """
    problems = []
    dags = dag_settings()
    env = server_env(objects)
    settings = Settings.from_env(env)
    deployment, container = server_container(objects)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    # The data claim holds the project's data/ (the training image's /app/data volume). It is
    # mounted whole (no subPath: that would pin a directory's inode at start), and MODEL_DIR is
    # the serving folder inside it (params.yaml's paths.serving_bundle, this default).
    folder = Path(DEFAULT_SERVING_FOLDER).relative_to("data")
    model_mount = Path(settings.model_dir)
    for _ in folder.parts:
        model_mount = model_mount.parent
    if model_mount / folder != Path(settings.model_dir):
        problems.append(f"server: MODEL_DIR {settings.model_dir} does not end in {folder}")
    expected = [
        (model_mount, dags.data_claim, None, True),
        (settings.prediction_log_dir, dags.log_claim, None, False),
    ]
    claims = {c["metadata"]["name"] for c in by_kind(objects, "PersistentVolumeClaim")}
    for path, claim, sub_path, read_only in expected:
        mount = mounts.get(str(path))
        if mount is None:
            problems.append(f"server: nothing mounted at {path}")
            continue
        source = volumes[mount["name"]].get("persistentVolumeClaim", {})
        if source.get("claimName") != claim or claim not in claims:
            problems.append(f"server: {path} is not the rendered claim {claim}")
        if mount.get("subPath") != sub_path:
            problems.append(f"server: {path} mounts subPath {mount.get('subPath')}, not {sub_path}")
        if mount.get("readOnly", False) != read_only:
            problems.append(f"server: {path} readOnly should be {read_only}")
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        if namespace is not None and namespace != dags.namespace:
            problems.append(f"{ref(obj)}: namespace {namespace}, not the DAGs' {dags.namespace}")
    return problems


def pod_problems(objects: Objects, benchmark: dict[str, Any]) -> list[str]:
    """Shutdown outlasts the server's drain; security settings; resources fit the benchmark."""
    problems = []
    deployment, container = server_container(objects)
    pod = deployment["spec"]["template"]["spec"]
    settings = Settings.from_env(server_env(objects))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    if pod["terminationGracePeriodSeconds"] <= pre_stop + drain_seconds(settings):
        problems.append(
            f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} <= preStop "
            f"{pre_stop} s + the server's drain {drain_seconds(settings)} s"
        )
    image_user = re.search(r"--uid (\d+)", (ROOT / "inference" / "Dockerfile").read_text())
    uid = int(image_user.group(1)) if image_user else None
    security = pod["securityContext"]
    if (security.get("runAsNonRoot"), security.get("runAsUser")) != (True, uid):
        problems.append(f"pod must run as non-root as the image's user {uid}")
    if security.get("seccompProfile") != {"type": "RuntimeDefault"}:
        problems.append("pod seccompProfile is not RuntimeDefault")
    for name, each in containers(objects).items():
        own = each.get("securityContext", {})
        if (own.get("allowPrivilegeEscalation"), own.get("readOnlyRootFilesystem")) != (
            False,
            True,
        ):
            problems.append(f"{name} may escalate privileges or write its root filesystem")
        if own.get("capabilities") != {"drop": ["ALL"]}:
            problems.append(f"{name} keeps Linux capabilities")
        if own.get("runAsUser", security.get("runAsUser")) in (None, 0):
            problems.append(f"{name} runs as root")
        resources = each.get("resources", {})
        if not resources or resources.get("requests") != resources.get("limits"):
            problems.append(f"{name}: requests differ from limits (not Guaranteed QoS)")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("pod mounts a service account token")
    resources = container["resources"]
    if quantity(str(resources["requests"]["cpu"])) != settings.workers:
        problems.append(
            f"cpu {resources['requests']['cpu']} is not one core per worker ({settings.workers})"
        )
    memory = benchmark["memory_after_load"]
    needed_mib = memory["supervisor_rss_mb"] + settings.workers * memory["max_worker_rss_mb"]
    limit_mib = quantity(resources["limits"]["memory"]) / 2**20
    if limit_mib < needed_mib * 1.25:
        problems.append(
            f"memory limit {limit_mib:.0f} MiB < 1.25 x measured RSS {needed_mib:.0f} MiB"
        )
    return problems


def _proxy_config_problems(objects: Objects, proxy: Manifest) -> list[str]:
    """Compose's image; the repo's config, a rendered ConfigMap, read-only at compose's path."""
    (deployment,) = by_kind(objects, "Deployment")
    problems = []
    if proxy["image"] != compose_proxy()["image"]:
        problems.append(f"proxy: image {proxy['image']}, not compose's {compose_proxy()['image']}")
    path = compose_config_path()
    mount = {m["mountPath"]: m for m in proxy.get("volumeMounts", [])}.get(path)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    config = proxy_config(objects)
    if mount is None:
        problems.append(f"proxy: nothing mounted at {path}")
    elif not mount.get("readOnly", False):
        problems.append(f"proxy: {path} is mounted writable")
    if mount is not None and config is None:
        name = volumes[mount["name"]].get("configMap", {}).get("name")
        problems.append(f"proxy: {path} is not a key of a rendered ConfigMap (mounts {name})")
    elif config is not None and config != generate.haproxy_copy(ROOT):
        problems.append(f"proxy: the config at {path} differs from {HAPROXY_CFG.relative_to(ROOT)}")
    return problems


def proxy_problems(objects: Objects) -> list[str]:
    """The proxy runs compose's image on the repo's config, in front of this pod's server.

    Its config is the rendered ConfigMap equal to inference/haproxy/haproxy.cfg, mounted
    read-only where compose mounts it; it listens on its port `http` and forwards to the server
    container's port with the documented bound; it outlives the server's drain.
    """
    (deployment,) = by_kind(objects, "Deployment")
    pod = containers(objects)
    proxy = pod.get(PROXY)
    if proxy is None:
        return ["Deployment has no proxy container"]
    problems = _proxy_config_problems(objects, proxy)
    env = container_env(proxy)
    ports = {port["name"]: port["containerPort"] for port in proxy.get("ports", [])}
    if env.get("PROXY_PORT") != str(ports.get("http")):
        problems.append(f"proxy: PROXY_PORT {env.get('PROXY_PORT')} is not its port http")
    if env.get("PROXY_METRICS_PORT") != str(ports.get("metrics")):
        problems.append(
            f"proxy: PROXY_METRICS_PORT {env.get('PROXY_METRICS_PORT')} is not its port metrics"
        )
    server = Settings.from_env(server_env(objects))
    server_ports = [port["containerPort"] for port in pod["server"].get("ports", [])]
    upstream = f"127.0.0.1:{server.port}"
    if env.get("PROXY_UPSTREAM") != upstream or server.port not in server_ports:
        problems.append(
            f"proxy: PROXY_UPSTREAM {env.get('PROXY_UPSTREAM')} is not the server container's "
            f"port {upstream}"
        )
    workers = server_env(objects).get("WORKERS")
    if workers is None:
        problems.append("server: WORKERS is not set, so the proxy's bound cannot follow it")
    else:
        bound = max_in_flight_problem(env.get("PROXY_MAX_IN_FLIGHT", "0"), workers, PROXY)
        problems += [bound] if bound else []
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in proxy:
            problems.append(f"proxy has no {probe}")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    own = pre_stop_seconds(proxy)
    server_end = pre_stop_seconds(pod["server"]) + drain_seconds(server)
    if own < server_end:
        problems.append(f"proxy: preStop {own} s ends before the server's drain ({server_end} s)")
    if grace <= own:
        problems.append(f"terminationGracePeriodSeconds {grace} <= the proxy's preStop {own} s")
    return problems


def pre_stop_seconds(container: Manifest) -> float:
    """A container's preStop sleep, 0 without one."""
    return float(
        container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    )


def newest_benchmark() -> dict[str, Any]:
    """The server's figures in the newest benchmark run (benchmarks/results/<date>-<host>.json)."""
    import json

    from benchmarks.contract import RESULTS_DIR

    runs = sorted(RESULTS_DIR.glob("[0-9]*-*.json"))
    return dict(json.loads(runs[-1].read_text(encoding="utf-8"))["servers"]["ours"])
