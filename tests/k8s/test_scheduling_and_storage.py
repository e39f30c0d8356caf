"""Scheduling, disruption and storage settings that break on a real cluster though they validate."""

from pathlib import Path

import pytest

from .manifests import (
    K8S,
    Objects,
    broken_copy,
    by_kind,
    edit,
    overlays,
    ref,
    render_overlay,
    rendered,
)

pytestmark = pytest.mark.needs("kubectl")


def spread_problems(objects: Objects) -> list[str]:
    """A hard (DoNotSchedule) spread must count only the nodes the pod may land on."""
    return [
        f"{ref(d)}: topology spread on {c['topologyKey']} is DoNotSchedule with nodeTaintsPolicy "
        f"{c.get('nodeTaintsPolicy', 'Ignore')}: tainted nodes count as empty domains"
        for d in by_kind(objects, "Deployment")
        for c in d["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        if c["whenUnsatisfiable"] == "DoNotSchedule" and c.get("nodeTaintsPolicy") != "Honor"
    ]


def disruption_problems(objects: Objects) -> list[str]:
    """Unready pods (no model yet, by design) must not block a drain."""
    return [
        f"{ref(pdb)}: unhealthyPodEvictionPolicy {policy}: a drain hangs while no pod is ready"
        for pdb in by_kind(objects, "PodDisruptionBudget")
        if (policy := pdb["spec"].get("unhealthyPodEvictionPolicy", "IfHealthyBudget"))
        != "AlwaysAllow"
    ]


def storage_problems(objects: Objects) -> list[str]:
    """Every claim names its class; a ReadWriteMany one a real class, not the cluster default."""
    problems = []
    for claim in by_kind(objects, "PersistentVolumeClaim"):
        spec = claim["spec"]
        if "storageClassName" not in spec:
            problems.append(f"{ref(claim)}: no storageClassName (the cluster's default class)")
        elif "ReadWriteMany" in spec["accessModes"] and not spec["storageClassName"]:
            problems.append(f"{ref(claim)}: ReadWriteMany without a named storage class")
    return problems


@pytest.mark.parametrize("name", overlays())
def test_spread_pdb_and_claims_hold_on_a_real_cluster(name: str) -> None:
    """Hard spreads honour taints, the PDB lets unready pods go, every claim names its class."""
    objects = rendered(name)
    assert [
        *spread_problems(objects),
        *disruption_problems(objects),
        *storage_problems(objects),
    ] == []


def test_production_claims_share_one_named_read_write_many_class() -> None:
    """Prod's claims are ReadWriteMany of the one class the README tells operators to create."""
    claims = by_kind(rendered("prod"), "PersistentVolumeClaim")
    assert {c["metadata"]["name"] for c in claims} >= {"car-price-data", "car-price-prediction-log"}
    assert {c["spec"]["storageClassName"] for c in claims} == {"car-price-shared"}
    assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims)
    assert "car-price-shared" in (K8S / "README.md").read_text(encoding="utf-8")


# --- bad input: each fails with the name of the problem ---------------------------------------


def test_defaults_that_hang_or_strand_pods_are_named(tmp_path: Path) -> None:
    """Ignore for taints, the default eviction policy and a classless claim: each named."""
    k8s_dir, _ = broken_copy(tmp_path)
    edit(k8s_dir / "base" / "deployment.yaml", "          nodeTaintsPolicy: Honor\n", "")
    edit(k8s_dir / "base" / "pdb.yaml", "  unhealthyPodEvictionPolicy: AlwaysAllow\n", "")
    edit(k8s_dir / "base" / "storage.yaml", "  storageClassName: car-price-shared\n", "")
    objects = render_overlay("prod", k8s_dir)
    assert spread_problems(objects) == [
        "Deployment/car-price: topology spread on kubernetes.io/hostname is DoNotSchedule with "
        "nodeTaintsPolicy Ignore: tainted nodes count as empty domains"
    ]
    assert disruption_problems(objects) == [
        "PodDisruptionBudget/car-price: unhealthyPodEvictionPolicy IfHealthyBudget: a drain "
        "hangs while no pod is ready"
    ]
    assert storage_problems(objects) == [
        "PersistentVolumeClaim/car-price-data: no storageClassName (the cluster's default class)"
    ]
