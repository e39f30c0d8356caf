"""The latency SLO's values (`inference.slo`) written where other files state them.

Each file below is written by hand except the places its patterns mark: there `make generate`
(`k8s/generate.py`) writes the value the group's name says, from `inference.slo`, and its check
names a file whose values differ, with the difference. A pattern that finds nothing is an error
naming the file and the pattern: the expression or sentence it marks was rewritten, and the
pattern must follow it. A space in a pattern matches any run of whitespace, line breaks
included, so a paragraph may be rewrapped. Every match of a pattern is written, so a pattern
marks only the SLO's statements (the availability SLO, 99.9 %, is not written from here).
"""

import re
from pathlib import Path
from typing import Final

from prometheus_client.utils import floatToGoString

from inference import slo

_NUMBER = r"[0-9.]+"

#: Each file (relative to the checkout) and the patterns that mark its SLO values: a named group
#: per value, named as in `values()`.
STAMPS: Final[dict[Path, tuple[str, ...]]] = {
    Path("monitoring/rules/recording.yml"): (
        rf'_bucket\{{route="/predict", le="(?P<le>{_NUMBER})"\}}',
    ),
    Path("monitoring/rules/alerts.yml"): (
        rf"latency SLO (?P<objective_pct>{_NUMBER}) % of /predict within "
        rf"(?P<threshold_ms>{_NUMBER}) ms -> (?P<budget>{_NUMBER});",
        rf"carprice:sli_latency:ratio_rate\w+\) > \({_NUMBER} \* (?P<budget>{_NUMBER})\)",
        rf"took longer than (?P<threshold_ms>{_NUMBER}) ms",
        rf"more than (?P<budget_pct>{_NUMBER}) % of /predict requests took",
    ),
    Path("k8s/base/hpa.yaml"): (rf"averageValue: (?P<target_quantity>{_NUMBER}m)",),
    Path("k8s/overlays/keda/scaledobject/scaledobject.yaml"): (
        rf'threshold: "(?P<target_s>{_NUMBER})"',
    ),
    Path("monitoring/grafana/dashboards/car-price.json"): (
        rf"The SLO: (?P<objective_pct>{_NUMBER}) % of /predict requests within "
        rf"(?P<threshold_ms>{_NUMBER}) ms",
        rf'"expr": "vector\((?P<threshold_s>{_NUMBER})\)", "legendFormat": "SLO {_NUMBER} ms"',
        rf'"SLO (?P<threshold_ms>{_NUMBER}) ms"',
        rf"carprice:sli_latency:ratio_rate1h\{{[^}}]*\}}\) / (?P<budget>{_NUMBER})",
    ),
    Path("README.md"): (
        rf"\*\*SLO\.\*\* (?P<objective_pct>{_NUMBER}) % of `/predict` requests under "
        rf'(?P<threshold_ms>{_NUMBER}) ms \(`le="(?P<le>{_NUMBER})"`',
        rf"`SHED_LAG_MS` \(default (?P<shed_lag_ms>{_NUMBER}) ms",
        rf"\*\*SLOs\.\*\* Latency: (?P<objective_pct>{_NUMBER}) % of `/predict` requests within "
        rf'(?P<threshold_ms>{_NUMBER}) ms \(histogram bucket `le="(?P<le>{_NUMBER})"`\)',
        rf"dashed (?P<threshold_ms>{_NUMBER}) ms line",
        rf"requests slower than (?P<threshold_ms>{_NUMBER}) ms",
        rf"Over (?P<budget_pct>{_NUMBER}) % slow for 3 days",
    ),
    Path("k8s/README.md"): (
        rf"holds the (?P<threshold_ms>{_NUMBER}) ms SLO's p99",
        rf"Target \*\*(?P<target_ms>{_NUMBER}) ms\*\* average",
        rf"is (?P<objective_pct>{_NUMBER}) % of `/predict` within (?P<threshold_ms>{_NUMBER}) ms,",
        rf"p99 ran up to (?P<p99_over_p95>{_NUMBER}) × p95",
        rf"keeps p99 near or under (?P<threshold_ms>{_NUMBER}) ms",
        rf"threshold (?P<target_s>{_NUMBER}), so KEDA",
    ),
}


class StampError(ValueError):
    """A file no longer holds the place a pattern marks for an SLO value."""


def _number(value: float) -> str:
    # Six decimals absorb binary noise (0.007 * 1e3 is 7.000000000000001) before `g` trims.
    return f"{round(value, 6):g}"


def values() -> dict[str, str]:
    """Each SLO value by the group name the patterns use, written as those files write it."""
    from inference.settings import Settings

    return {
        # The bucket label as the server's histogram writes it (prometheus_client's format; the
        # function has no annotations, and mypy checks this module through scripts.generate).
        "le": floatToGoString(slo.LATENCY_THRESHOLD_S),  # type: ignore[no-untyped-call]
        "threshold_s": _number(slo.LATENCY_THRESHOLD_S),
        "threshold_ms": _number(slo.LATENCY_THRESHOLD_S * 1e3),
        "objective_pct": _number(slo.LATENCY_OBJECTIVE * 100),
        "budget": _number(slo.LATENCY_BUDGET),
        "budget_pct": _number(slo.LATENCY_BUDGET * 100),
        "p99_over_p95": _number(slo.P99_OVER_P95),
        # A Kubernetes quantity: the target in milli-units of seconds.
        "target_quantity": f"{_number(slo.HPA_P95_TARGET_S * 1e3)}m",
        "target_s": _number(slo.HPA_P95_TARGET_S),
        "target_ms": _number(slo.HPA_P95_TARGET_S * 1e3),
        "shed_lag_ms": str(Settings().shed_lag_ms),
    }


def stamped(target: Path, root: Path) -> str:
    """The file `target` under `root` with the SLO's values written where its patterns mark.

    Raises:
        StampError: a pattern of the file matches nothing in it.
    """
    text, wanted = (root / target).read_text(encoding="utf-8"), values()
    for pattern in STAMPS[target]:
        matches = list(re.finditer(pattern.replace(" ", r"\s+"), text))
        if not matches:
            raise StampError(
                f"{target}: nothing matches the SLO pattern {pattern!r} (k8s/slo_values.py): "
                "the text it marks was rewritten; make the pattern follow it"
            )
        spans = sorted(
            (match.span(name), wanted[name]) for match in matches for name in match.groupdict()
        )
        for (start, end), value in reversed(spans):
            text = text[:start] + value + text[end:]
    return text
