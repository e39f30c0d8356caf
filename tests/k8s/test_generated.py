"""Plain kustomize renders every kustomization; every generated file matches its one home.

The generated files: k8s/'s copies of the proxy's config and the rules, and the SLO's values
(`inference.slo`) in the files that state them (`k8s/slo_values.py`).
"""

import re
import shutil
from pathlib import Path

import pytest

from inference import slo
from k8s import generate, render, slo_values
from scripts import generated

from .manifests import K8S, ROOT, by_kind, edit, overlays

KUSTOMIZATIONS = [K8S / "overlays" / name for name in overlays()]


@pytest.mark.needs("kubectl")
@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_plain_kubectl_kustomize_renders_with_the_default_load_restrictor(path: Path) -> None:
    """`kubectl kustomize PATH`, no flags (as `apply -k`, Argo CD and Flux run it), succeeds."""
    text = render.kustomize_text(path)
    assert "kind:" in text


@pytest.mark.needs("kubectl")
@pytest.mark.parametrize("name", ["prod", "keda"])
def test_operator_overlays_carry_the_prometheus_rule_of_every_rule_group(name: str) -> None:
    """Where a PodMonitor is rendered, the PrometheusRule is too, in its namespace and labels."""
    objects = render.kustomize(K8S / "overlays" / name)
    (monitor,) = by_kind(objects, "PodMonitor")
    (rule,) = by_kind(objects, "PrometheusRule")
    assert rule["metadata"]["namespace"] == monitor["metadata"]["namespace"]
    assert rule["metadata"]["labels"] == monitor["metadata"]["labels"]
    assert rule["spec"]["groups"]


def test_committed_files_are_what_the_generator_writes() -> None:
    """Each generated file (copies, SLO values) equals `make generate`'s output for its source."""
    assert generated.stale(generate.GENERATED) == []


def test_every_generated_copy_names_its_source_and_the_command() -> None:
    """A generated copy says it is generated, from what, and how to regenerate it."""
    for target in generate.COPIES:
        lines = (ROOT / target).read_text(encoding="utf-8").splitlines()[:3]
        assert lines[0] == "# GENERATED, DO NOT EDIT.", target
        assert lines[1].startswith("# source: "), target
        assert lines[2] == f"# regenerate with: {generated.COMMAND}", target


# --- bad input: each fails with the name of the problem ---------------------------------------


def _sources(tmp_path: Path) -> Path:
    """A checkout of what the generator reads and writes, to break."""
    for folder in (Path("k8s"), generate.RULES_SOURCE):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__py*"))
    for path in [generate.HAPROXY_SOURCE, *slo_values.STAMPS]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    return tmp_path


def test_a_source_changed_without_regenerating_names_the_copy_and_the_difference(
    tmp_path: Path,
) -> None:
    """An edited rule or proxy config left unregenerated: the stale copy and its diff are named."""
    root = _sources(tmp_path)
    edit(root / generate.RULES_SOURCE / "recording.yml", "p95_per_pod", "p95_by_pod")
    edit(root / generate.HAPROXY_SOURCE, "nbthread 1", "nbthread 2")
    problems = generated.stale(generate.GENERATED, root)
    assert [p.split(" ", 1)[0] for p in problems] == [
        str(generate.HAPROXY_COPY),
        str(generate.RULE_COPY),
    ]
    assert "-    nbthread 1\n+    nbthread 2" in problems[0]
    assert "+    - record: carprice:request_duration_seconds:p95_by_pod" in problems[1]
    assert generated.generate(generate.GENERATED, root) == [
        generate.HAPROXY_COPY,
        generate.RULE_COPY,
    ]
    assert generated.stale(generate.GENERATED, root) == []


def test_a_hand_edited_copy_is_named(tmp_path: Path) -> None:
    """Editing the generated copy instead of its source fails, naming the copy."""
    root = _sources(tmp_path)
    edit(root / generate.HAPROXY_COPY, "nbthread 1", "nbthread 4")
    (problem,) = generated.stale(generate.GENERATED, root)
    assert problem.startswith(f"{generate.HAPROXY_COPY} differs from `make generate`")


@pytest.mark.needs("kubectl")
def test_a_file_outside_the_kustomization_is_refused_naming_it(tmp_path: Path) -> None:
    """The base reading the proxy's config from inference/ again fails as plain kustomize does."""
    root = _sources(tmp_path)
    edit(
        root / "k8s" / "base" / "kustomization.yaml",
        "      - haproxy.cfg\n",
        "      - haproxy.cfg=../../inference/haproxy/haproxy.cfg\n",
    )
    with pytest.raises(render.RenderError, match=r"haproxy\.cfg' is not in or below"):
        render.kustomize(root / "k8s" / "overlays" / "prod")


def test_a_hand_edited_slo_value_is_named_with_the_difference(tmp_path: Path) -> None:
    """The SLO's bucket or the HPA's target edited by hand: each file and its difference named."""
    root = _sources(tmp_path)
    edit(root / "monitoring/rules/recording.yml", 'le="0.01"}[30m]', 'le="0.025"}[30m]')
    edit(root / "k8s/base/hpa.yaml", "averageValue: 7m", "averageValue: 8m")
    problems = generated.stale(generate.GENERATED, root)
    assert [p.split(" ", 1)[0] for p in problems] == [
        "monitoring/rules/recording.yml",
        "k8s/base/hpa.yaml",
        str(generate.RULE_COPY),  # copied from the edited rules
    ]
    bucket = '            rate(carprice_http_request_duration_seconds_bucket{route="/predict", '
    assert f'-{bucket}le="0.025"}}[30m])\n+{bucket}le="0.01"}}[30m])' in problems[0]
    assert "-          averageValue: 8m\n+          averageValue: 7m" in problems[1]
    generated.generate(generate.GENERATED, root)
    assert generated.stale(generate.GENERATED, root) == []


def test_the_slo_changed_in_its_home_is_written_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new threshold and target in inference.slo reach the rules, their copy, HPA, KEDA, docs."""
    root = _sources(tmp_path)
    monkeypatch.setattr(slo, "LATENCY_THRESHOLD_S", 0.025)
    monkeypatch.setattr(slo, "HPA_P95_TARGET_S", 0.018)
    written = generated.generate(generate.GENERATED, root)
    assert set(slo_values.STAMPS) | {generate.RULE_COPY} <= set(written)
    for path in ("monitoring/rules/recording.yml", generate.RULE_COPY):
        text = (root / path).read_text(encoding="utf-8")
        assert text.count('le="0.025"') == 3
        assert 'le="0.01"' not in text
    assert "averageValue: 18m" in (root / "k8s/base/hpa.yaml").read_text(encoding="utf-8")
    keda = root / "k8s/overlays/keda/scaledobject/scaledobject.yaml"
    assert 'threshold: "0.018"' in keda.read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert re.search(r"requests within\s+25 ms \(histogram bucket `le=\"0.025\"`\)", readme)
    assert generated.stale(generate.GENERATED, root) == []


def test_a_rewritten_sentence_an_slo_pattern_no_longer_finds_is_named(tmp_path: Path) -> None:
    """A statement of the SLO reworded so its pattern finds nothing: the file and pattern named."""
    root = _sources(tmp_path)
    edit(root / "README.md", "dashed 10 ms line", "dashed line at the threshold")
    with pytest.raises(slo_values.StampError, match=r"README\.md: nothing matches .*dashed"):
        generated.stale(generate.GENERATED, root)
