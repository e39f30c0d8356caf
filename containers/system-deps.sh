#!/usr/bin/env bash
# Makes this machine able to build and run the images (called by `make system-deps`): Debian's
# podman and the tools it needs, plus the two podman settings this sandbox needs. Idempotent;
# changes the system only as root, otherwise prints what is missing.
set -euo pipefail

PACKAGES=(podman buildah runc fuse-overlayfs slirp4netns uidmap containernetworking-plugins mmdebstrap catatonit ca-certificates)
CONF=/etc/containers/containers.conf
# runc: crun rejects this machine's cgroup layout. The ulimits: the default (raising nofile to
# 1048576) needs CAP_SYS_RESOURCE, which the sandbox lacks.
SETTINGS='# Written by containers/system-deps.sh (make system-deps).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]

[engine]
runtime = "runc"'

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query --show --showformat='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed \
        || missing+=("$package")
done
conf_stale=false
[ "$(cat "$CONF" 2>/dev/null)" = "$SETTINGS" ] || conf_stale=true

if [ "$(id -u)" != 0 ]; then
    [ ${#missing[@]} -eq 0 ] || echo "install the Debian packages ${missing[*]} to build and run the images" >&2
    $conf_stale && printf 'write %s as:\n%s\n' "$CONF" "$SETTINGS" >&2
    exit 0
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    # With recommends: netavark (the network podman uses here), catatonit (the pause image of
    # `kube play`, built locally, since no registry serves one) and iptables come with them.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if $conf_stale; then
    [ ! -e "$CONF" ] || cp "$CONF" "$CONF.before-car-price"
    mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$SETTINGS" >"$CONF"
fi
