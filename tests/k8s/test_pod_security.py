"""The server's pod, as kustomize renders it, passes Pod Security "restricted"."""

import copy
from collections.abc import Callable
from typing import Any

import pytest

from ..pod_security import restricted_problems
from .manifests import by_kind, overlays, rendered

pytestmark = pytest.mark.needs("kubectl")

Manifest = dict[str, Any]


def server_pod(name: str) -> Manifest:
    """The Deployment's pod template of overlay `name`, as the Pod the ReplicaSet creates."""
    (deployment,) = by_kind(rendered(name), "Deployment")
    template = deployment["spec"]["template"]
    return {
        "metadata": copy.deepcopy(template["metadata"]),
        "spec": copy.deepcopy(template["spec"]),
    }


@pytest.mark.parametrize("name", overlays())
def test_the_server_pod_passes_restricted(name: str) -> None:
    """Both containers of the rendered pod pass every restricted control, baseline included."""
    assert restricted_problems(server_pod(name)) == []


def _server(spec: Manifest) -> Manifest:
    context: Manifest = spec["containers"][0].setdefault("securityContext", {})
    return context


#: One breach per control of the page, and the controls it must be reported under (+-joined).
BREACHES: dict[str, tuple[str, Callable[[Manifest], None]]] = {
    "host network": ("Host Namespaces", lambda s: s.update(hostNetwork=True)),
    "privileged": ("Privileged Containers", lambda s: _server(s).update(privileged=True)),
    # In the baseline's list, not restricted's.
    "KILL added": ("Capabilities", lambda s: _server(s)["capabilities"].update(add=["KILL"])),
    "SYS_ADMIN added": (
        "Capabilities (baseline)+Capabilities",
        lambda s: _server(s)["capabilities"].update(add=["SYS_ADMIN"]),
    ),
    "ALL kept": ("Capabilities", lambda s: _server(s)["capabilities"].update(drop=["NET_RAW"])),
    "hostPath": (
        "HostPath Volumes+Volume Types",
        lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    ),
    "nfs volume": (
        "Volume Types",
        lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
    ),
    "host port": ("Host Ports", lambda s: s["containers"][0]["ports"][0].update(hostPort=8000)),
    "AppArmor unconfined": (
        "AppArmor",
        lambda s: _server(s).update(appArmorProfile={"type": "Unconfined"}),
    ),
    "SELinux type": ("SELinux", lambda s: _server(s).update(seLinuxOptions={"type": "spc_t"})),
    "proc unmasked": ("/proc Mount Type", lambda s: _server(s).update(procMount="Unmasked")),
    "seccomp unconfined": (
        "Seccomp",
        lambda s: s["securityContext"].update(seccompProfile={"type": "Unconfined"}),
    ),
    "seccomp unset": ("Seccomp", lambda s: s["securityContext"].pop("seccompProfile")),
    "unsafe sysctl": (
        "Sysctls",
        lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    ),
    "escalation allowed": (
        "Privilege Escalation",
        lambda s: _server(s).pop("allowPrivilegeEscalation"),
    ),
    "may run as root": ("Running as Non-root", lambda s: s["securityContext"].pop("runAsNonRoot")),
    "uid 0": ("Running as Non-root user", lambda s: _server(s).update(runAsUser=0)),
    "host process": (
        "HostProcess",
        lambda s: _server(s).update(windowsOptions={"hostProcess": True}),
    ),
}


@pytest.mark.parametrize("breach", BREACHES)
def test_each_breach_is_named_by_its_control(breach: str) -> None:
    """A pod breaking one control fails under that control's name, and only for that breach."""
    control, apply = BREACHES[breach]
    pod = server_pod("prod")
    apply(pod["spec"])
    problems = restricted_problems(pod)
    assert problems
    assert {problem.split(": ", 1)[0] for problem in problems} == set(control.split("+")), problems


def test_net_bind_service_is_the_one_capability_restricted_allows() -> None:
    """Adding NET_BIND_SERVICE (and nothing else) after dropping ALL passes."""
    pod = server_pod("prod")
    _server(pod["spec"])["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert restricted_problems(pod) == []
