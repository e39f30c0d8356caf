"""promtool over monitoring/: the Prometheus configs, the rule files and their unit tests.

promtool comes from Debian's `prometheus` package (`make system-deps` installs it).
"""

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..programs import program

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "tests").glob("*_test.yml"))


def _run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [program("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool and fail the test with its whole output when it does not succeed."""
    result = _run_promtool(*args)
    if result.returncode != 0:
        pytest.fail(f"promtool {' '.join(map(str, args))} failed:\n{result.stdout}{result.stderr}")
    return result


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.needs("promtool")
def test_compose_prometheus_config_is_valid() -> None:
    """monitoring/prometheus.yml and the rule files it loads pass promtool check config."""
    _promtool("check", "config", MONITORING / "prometheus.yml")


@pytest.mark.needs("promtool")
def test_kubernetes_prometheus_config_is_valid(tmp_path: Path) -> None:
    """prometheus-kubernetes.yml passes promtool check config, as far as this promtool can."""
    config = MONITORING / "prometheus-kubernetes.yml"
    probe = _run_promtool("check", "config", config)
    if probe.returncode == 0:
        return
    if "kubernetes_sd_configs not found" not in probe.stdout + probe.stderr:
        pytest.fail(f"promtool check config {config} failed:\n{probe.stdout}{probe.stderr}")
    # Debian's promtool is built without Kubernetes discovery. Check everything else (globals,
    # relabelling, rule files) with the discovery block swapped for an empty static target list.
    parsed = _load(config)
    parsed["rule_files"] = [str(MONITORING / rule) for rule in parsed["rule_files"]]
    for job in parsed["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["static_configs"] = []
    derived = tmp_path / "prometheus-kubernetes.yml"
    derived.write_text(yaml.safe_dump(parsed), encoding="utf-8")
    _promtool("check", "config", derived)


def test_both_configs_share_globals_and_rules() -> None:
    """The compose and Kubernetes configs differ only in their scrape jobs."""
    compose = _load(MONITORING / "prometheus.yml")
    kubernetes = _load(MONITORING / "prometheus-kubernetes.yml")
    assert compose["global"] == kubernetes["global"]
    assert compose["rule_files"] == kubernetes["rule_files"]
    assert sorted(compose["rule_files"]) == sorted(f"rules/{p.name}" for p in RULE_FILES)


@pytest.mark.needs("promtool")
def test_rule_files_are_valid() -> None:
    """Every rule file passes promtool check rules (syntax, PromQL, duplicate names)."""
    _promtool("check", "rules", *RULE_FILES)


@pytest.mark.needs("promtool")
def test_rule_unit_tests_pass() -> None:
    """The promtool unit tests of the recording rules and alerts pass.

    One promtool per file, as many at a time as there are cores: one promtool runs the files
    one after another (each takes 1 to 30 s), 45 s in all on this 2-core machine against 30 s.
    """
    assert RULE_TESTS, "no monitoring/tests/*_test.yml found"
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        runs = list(pool.map(lambda path: _run_promtool("test", "rules", path), RULE_TESTS))
    failed = [
        f"promtool test rules {path.name} failed:\n{run.stdout}{run.stderr}"
        for path, run in zip(RULE_TESTS, runs, strict=True)
        if run.returncode != 0
    ]
    assert not failed, "\n".join(failed)


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """Each alert in the rule files is tested at least once firing and once staying quiet."""
    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in _load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in _load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts, "no alerts found in monitoring/rules"
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested staying quiet"
