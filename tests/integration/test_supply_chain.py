"""The inference environment's dependencies against known vulnerabilities (pip-audit).

Audited: exactly what the image installs, the locked requirements of the `inference` package
without dev groups (`uv export --package inference --no-dev`), against pip-audit's default
service (PyPI's advisory data). A finding fails the test unless pip-audit-ignore.toml lists
it with a reason.
"""

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ..programs import program

ROOT = Path(__file__).resolve().parents[2]
IGNORE_FILE = ROOT / "pip-audit-ignore.toml"


def accepted_findings() -> dict[str, str]:
    """The advisories pip-audit-ignore.toml accepts, with their reasons."""
    entries: list[dict[str, Any]] = tomllib.loads(IGNORE_FILE.read_text("utf-8"))["ignore"]
    return {entry["id"]: entry["reason"] for entry in entries}


def test_every_accepted_finding_has_a_reason() -> None:
    """Each pip-audit-ignore.toml entry names an advisory and says why it is accepted."""
    for advisory, reason in accepted_findings().items():
        assert advisory.startswith(("PYSEC-", "GHSA-", "CVE-")), advisory
        assert len(reason.strip()) >= 20, f"{advisory}: give a real reason"


@pytest.mark.integration
@pytest.mark.needs("uv", "pip-audit")
def test_inference_dependencies_have_no_known_vulnerabilities(tmp_path: Path) -> None:
    """pip-audit finds no vulnerability in the inference environment but the accepted ones."""
    uv = program("uv")
    requirements = tmp_path / "requirements.txt"
    export = ["export", "--package", "inference", "--no-dev", "--frozen", "--no-emit-workspace"]
    subprocess.run(
        [uv, *export, "--format=requirements-txt", f"--output-file={requirements}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    ignores = [f"--ignore-vuln={advisory}" for advisory in accepted_findings()]
    pip_audit = program("pip-audit")
    options = ["--disable-pip", "--format=json", "--progress-spinner=off", *ignores]
    audit = subprocess.run(
        [pip_audit, f"--requirement={requirements}", *options],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert audit.stdout, audit.stderr  # exit 1 with a report means findings: read them below
    dependencies = json.loads(audit.stdout)["dependencies"]
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    if skipped and len(skipped) == len(dependencies):
        # pip-audit reports "No known vulnerabilities found" and exits 0 when it could look
        # nothing up: that is no audit. Say so instead of passing.
        pytest.skip(
            f"pip-audit's vulnerability service could not be reached: all {len(skipped)} "
            f"dependencies unaudited ({skipped[0]['skip_reason']})"
        )
    assert skipped == [], "dependencies pip-audit could not audit"
    findings = {
        f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {vuln['fix_versions']})"
        for dep in dependencies
        for vuln in dep.get("vulns", [])
    }
    print(f"\npip-audit: {len(dependencies)} dependencies audited, {len(findings)} findings")
    assert findings == set()
    assert audit.returncode == 0, audit.stderr
