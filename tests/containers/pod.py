"""The rendered `dev` overlay, read as `podman kube play` (podman 4.3) reads it.

Everything the pod test needs (container names, ports by name, env, uids, volumes) is read from
the rendered manifest, so the test follows changes to k8s/. What podman 4.3 does with each field
comes from its documentation (docs/kubernetes_support.md, podman-kube-play(1)) and its source
(pkg/specgen/generate/kube, pkg/domain/infra/abi/play.go at v4.3.1):
- kinds: only Pod, Deployment, PersistentVolumeClaim, ConfigMap (and Secret); every other kind
  is skipped with an info log (`IGNORED_KINDS` lists the ones the overlay renders);
- volumeMounts.subPath is ignored: the whole volume is mounted at mountPath;
- a PVC's claimName is a podman named volume; a PVC document creates it (an error if it exists);
  podman gives an empty volume to the user of the first container mounting it (so uid 10001
  can write the prediction log, as the kubelet's fsGroup would let it);
- a configMap volume becomes a named volume of its keys' files; with subPath ignored, the proxy's
  /usr/local/etc/haproxy/haproxy.cfg is a directory holding haproxy.cfg, which `haproxy -f`
  reads as a config directory;
- pod and container securityContext runAsUser/runAsGroup, readOnlyRootFilesystem,
  allowPrivilegeEscalation, privileged and capabilities apply; fsGroup, runAsNonRoot and
  seccompProfile do not (podman's default seccomp profile applies anyway);
- livenessProbe becomes a podman healthcheck (run by a systemd timer, absent here); readiness and
  startup probes, lifecycle.preStop and terminationGracePeriodSeconds are ignored;
- resources.limits become cgroup limits; every containerPort is published on the host.
"""

import copy
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import yaml

from ..training.conftest import REPO_ROOT

Doc = dict[str, Any]

#: What podman 4.3's kube play creates; it skips the rest.
PLAYED_KINDS: Final = frozenset({"Pod", "Deployment", "PersistentVolumeClaim", "ConfigMap"})

#: The manifest's image (repository, without tag) → the attribute of `Images` built here.
LOCAL_IMAGE: Final = {"car-price-api": "api", "haproxy": "proxy"}


def free_port() -> int:
    """A TCP port on the host's loopback that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def render(overlay: str = "dev") -> list[Doc]:
    """The overlay's objects, as `make manifests OVERLAY=...` prints them."""
    out = subprocess.run(
        [sys.executable, "-m", "k8s.render", str(REPO_ROOT / "k8s" / "overlays" / overlay)],
        capture_output=True, text=True, check=True, timeout=300, cwd=REPO_ROOT,
    ).stdout  # fmt: skip
    return [doc for doc in yaml.safe_load_all(out) if doc]


def ignored_kinds(docs: list[Doc]) -> list[str]:
    """The kinds of the rendered objects that podman 4.3 does not play."""
    return sorted({doc["kind"] for doc in docs} - PLAYED_KINDS)


def deployment(docs: list[Doc]) -> Doc:
    """The one Deployment of the overlay."""
    (found,) = (doc for doc in docs if doc["kind"] == "Deployment")
    return found


def pod_spec(docs: list[Doc]) -> Doc:
    """The Deployment's pod template spec."""
    spec: Doc = deployment(docs)["spec"]["template"]["spec"]
    return spec


def image_role(container: Doc) -> str:
    """`api` or `proxy`: which local image stands in for the container's image."""
    repository = container["image"].rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return LOCAL_IMAGE[repository]


def scrape_endpoints(overlay: str = "prod") -> list[tuple[str, str]]:
    """(port name, path) of every PodMonitor endpoint the overlay renders (dev has none).

    The pod is the same in every overlay; the PodMonitor comes with the Operator component.
    """
    return [
        (endpoint["port"], endpoint["path"])
        for doc in render(overlay)
        if doc["kind"] == "PodMonitor"
        for endpoint in doc["spec"]["podMetricsEndpoints"]
    ]


def container(docs: list[Doc], role: str) -> Doc:
    """The pod's container whose image is the `api` or the `proxy` image."""
    containers: list[Doc] = pod_spec(docs)["containers"]
    (found,) = (c for c in containers if image_role(c) == role)
    return found


def run_as(docs: list[Doc], container_: Doc) -> tuple[int, int]:
    """The uid and gid the manifest gives a container (its own securityContext, else the pod's)."""
    pod_context = pod_spec(docs).get("securityContext", {})
    own = container_.get("securityContext", {})
    uid = own.get("runAsUser", pod_context.get("runAsUser"))
    gid = own.get("runAsGroup", pod_context.get("runAsGroup"))
    return int(uid), int(gid)


def port(container_: Doc, name: str) -> int:
    """A container's port number by the name the manifest gives it."""
    (number,) = (p["containerPort"] for p in container_["ports"] if p["name"] == name)
    return int(number)


def env(docs: list[Doc], container_: Doc) -> dict[str, str]:
    """A container's environment from the manifest: its ConfigMaps (envFrom), then `env`."""
    maps = {
        doc["metadata"]["name"]: doc.get("data", {}) for doc in docs if doc["kind"] == "ConfigMap"
    }
    found: dict[str, str] = {}
    for source in container_.get("envFrom", []):
        found |= maps[source["configMapRef"]["name"]]
    found |= {item["name"]: item["value"] for item in container_.get("env", []) if "value" in item}
    return found


def claims(docs: list[Doc]) -> list[Doc]:
    """The PersistentVolumeClaims the pod mounts (podman makes each a named volume)."""
    mounted = {
        volume["persistentVolumeClaim"]["claimName"]
        for volume in pod_spec(docs)["volumes"]
        if "persistentVolumeClaim" in volume
    }
    return [
        doc
        for doc in docs
        if doc["kind"] == "PersistentVolumeClaim" and doc["metadata"]["name"] in mounted
    ]


def config_maps(docs: list[Doc]) -> list[Doc]:
    """The ConfigMaps of the overlay (podman makes a named volume of each one a pod mounts)."""
    return [doc for doc in docs if doc["kind"] == "ConfigMap"]


def claim_of(docs: list[Doc], volume_name: str) -> str | None:
    """The claimName behind a pod volume, or None if it is not a claim."""
    for volume in pod_spec(docs)["volumes"]:
        if volume["name"] == volume_name and "persistentVolumeClaim" in volume:
            return str(volume["persistentVolumeClaim"]["claimName"])
    return None


def playable(docs: list[Doc], images: object) -> list[Doc]:
    """The ConfigMaps and the Deployment, each container's image replaced by the local one."""
    played = copy.deepcopy([doc for doc in docs if doc["kind"] in {"ConfigMap", "Deployment"}])
    for container_ in pod_spec(played)["containers"]:
        container_["image"] = getattr(images, image_role(container_))
        # The local tags exist only in podman's storage: never ask a registry.
        container_["imagePullPolicy"] = "Never"
        # podman publishes every containerPort on the host, at the same number without a
        # hostPort: on a free loopback port instead, so a busy 8000 or 8080 here breaks nothing.
        # The tests talk to the pod's own IP, as a Service would.
        for port_ in container_.get("ports", []):
            port_["hostIP"] = "127.0.0.1"
            port_["hostPort"] = free_port()
    return played


def publish_model(
    docs: list[Doc],
    server_model_dir: str,
    volume_path: Callable[[str], Path],
    write: Callable[[Path], object],
) -> Path:
    """Put a bundle where the server, as podman mounts the model claim, finds it; return that dir.

    The one place that assumes the model's layout on its claim: the serving folder MODEL_DIR
    lies inside a claim mounted whole (no subPath), and `write` publishes into it the way the
    publisher does (`bundles/<digest>/` + the `current` pointer). podman 4.3 ignores subPath
    anyway and mounts a claim's root at mountPath, so MODEL_DIR's path below mountPath is the
    folder inside the claim's volume.
    """
    server = container(docs, "api")
    for mount in server["volumeMounts"]:
        inside = os.path.relpath(server_model_dir, mount["mountPath"])
        claim = claim_of(docs, mount["name"])
        if claim is not None and not inside.startswith(".."):
            target = volume_path(claim) / inside
            target.mkdir(parents=True, exist_ok=True)
            write(target)
            return target
    raise AssertionError(
        f"no claim of the server is mounted at or above MODEL_DIR {server_model_dir}"
    )
