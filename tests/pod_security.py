"""The Pod Security Standards' "restricted" profile, as checks on a pod as the API receives it.

Written from the Kubernetes page "Pod Security Standards"
(https://kubernetes.io/docs/concepts/security/pod-security-standards/, current version; the
source is content/en/docs/concepts/security/pod-security-standards.md of kubernetes/website).
The page defines "restricted" as "Everything from the baseline profile" plus its own controls;
each check below is one control of the page, under the page's name, with its "Restricted
Fields" and "Allowed Values":

Baseline:
- HostProcess: `windowsOptions.hostProcess` undefined or false (pod and every container).
- Host Namespaces: `spec.hostNetwork`, `spec.hostPID`, `spec.hostIPC` undefined or false.
- Privileged Containers: `securityContext.privileged` undefined or false.
- Capabilities (baseline): `capabilities.add` only from the page's list (AUDIT_WRITE, CHOWN,
  DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP,
  SETUID, SYS_CHROOT); the restricted control below narrows it.
- HostPath Volumes: no `spec.volumes[*].hostPath`.
- Host Ports: `ports[*].hostPort` undefined or 0.
- AppArmor: `appArmorProfile.type` undefined, RuntimeDefault or Localhost (pod and containers);
  the annotation `container.apparmor.security.beta.kubernetes.io/*` undefined, `runtime/default`
  or `localhost/*`.
- SELinux: `seLinuxOptions.type` undefined, "", container_t, container_init_t,
  container_kvm_t or container_engine_t; `seLinuxOptions.user` and `.role` undefined or "".
- /proc Mount Type: `procMount` undefined or Default.
- Seccomp (baseline): `seccompProfile.type` never Unconfined; narrowed below.
- Sysctls: `spec.securityContext.sysctls[*].name` only from the page's safe set.

Restricted:
- Volume Types: only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim,
  projected, secret.
- Privilege Escalation: `allowPrivilegeEscalation` false in every container (undefined fails:
  the runtime's default allows it).
- Running as Non-root: `spec.securityContext.runAsNonRoot` true, or true in every container
  that does not inherit it; a container's false fails.
- Running as Non-root user: `runAsUser` undefined or non-zero (pod and containers).
- Seccomp: `seccompProfile.type` RuntimeDefault or Localhost at the pod level, or in every
  container where the pod sets none.
- Capabilities: every container drops ALL and adds at most NET_BIND_SERVICE.

Containers means `containers`, `initContainers` and `ephemeralContainers` alike. Each problem
starts with the control's name, then the container or field at fault.
"""

from collections.abc import Iterator
from typing import Any, Final

Manifest = dict[str, Any]

BASELINE_CAPABILITIES: Final = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SAFE_SYSCTLS: Final = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
SELINUX_TYPES: Final = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
VOLUME_TYPES: Final = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
CONFINED: Final = frozenset({"RuntimeDefault", "Localhost"})


def _containers(spec: Manifest) -> Iterator[tuple[str, Manifest]]:
    """Every container of every kind, by a name that says which."""
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(kind) or []:
            yield f"{kind}[{container['name']}]", container


def restricted_problems(pod: Manifest) -> list[str]:
    """What in `pod` (a Pod: metadata and spec) breaks the restricted profile; [] if nothing."""
    return [*_pod_problems(pod), *_context_problems(pod["spec"]), *_container_problems(pod["spec"])]


def _pod_problems(pod: Manifest) -> Iterator[str]:
    """The pod-level controls: host namespaces, volumes, sysctls, AppArmor annotations."""
    spec: Manifest = pod["spec"]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield f"Host Namespaces: spec.{field} is true"
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            yield f"HostPath Volumes: volume {volume['name']} is a hostPath"
        if kinds - VOLUME_TYPES:
            yield f"Volume Types: volume {volume['name']} is {sorted(kinds - VOLUME_TYPES)}"
    for sysctl in (spec.get("securityContext") or {}).get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            yield f"Sysctls: {sysctl['name']} is not in the safe set"
    annotations: dict[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    for key, value in annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            yield f"AppArmor: annotation {key}={value}"


def _context_problems(spec: Manifest) -> Iterator[str]:
    """The fields the pod's securityContext and each container's share."""
    contexts = [("spec.securityContext", spec.get("securityContext") or {})] + [
        (where, container.get("securityContext") or {}) for where, container in _containers(spec)
    ]
    for where, context in contexts:
        if (context.get("windowsOptions") or {}).get("hostProcess"):
            yield f"HostProcess: {where} sets windowsOptions.hostProcess"
        apparmor = (context.get("appArmorProfile") or {}).get("type")
        if apparmor is not None and apparmor not in CONFINED:
            yield f"AppArmor: {where}.appArmorProfile.type is {apparmor}"
        selinux = context.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES:
            yield f"SELinux: {where}.seLinuxOptions.type is {selinux['type']}"
        for field in ("user", "role"):
            if selinux.get(field):
                yield f"SELinux: {where}.seLinuxOptions.{field} is set"
        if context.get("runAsUser") == 0:
            yield f"Running as Non-root user: {where}.runAsUser is 0"
        seccomp = (context.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in CONFINED:
            yield f"Seccomp: {where}.seccompProfile.type is {seccomp}"


def _container_problems(spec: Manifest) -> Iterator[str]:
    """The per-container controls, with what the pod's securityContext lets them inherit."""
    pod_context: Manifest = spec.get("securityContext") or {}
    pod_non_root = pod_context.get("runAsNonRoot") is True
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type") in CONFINED
    for where, container in _containers(spec):
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            yield f"Privileged Containers: {where} is privileged"
        capabilities = context.get("capabilities") or {}
        added = set(capabilities.get("add") or [])
        if added - BASELINE_CAPABILITIES:
            yield f"Capabilities (baseline): {where} adds {sorted(added - BASELINE_CAPABILITIES)}"
        if "ALL" not in (capabilities.get("drop") or []):
            yield f"Capabilities: {where} does not drop ALL"
        if added - {"NET_BIND_SERVICE"}:
            yield f"Capabilities: {where} adds {sorted(added - {'NET_BIND_SERVICE'})}"
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                yield f"Host Ports: {where} port {port.get('containerPort')} uses hostPort"
        if context.get("procMount", "Default") != "Default":
            yield f"/proc Mount Type: {where}.procMount is {context['procMount']}"
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"Privilege Escalation: {where} does not set allowPrivilegeEscalation: false"
        non_root = context.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            yield f"Running as Non-root: {where} may run as root (runAsNonRoot not true)"
        if (context.get("seccompProfile") or {}).get("type") is None and not pod_seccomp:
            yield f"Seccomp: {where} has no seccompProfile, nor has the pod"
