"""The latency SLO and the autoscaler's p95 target it sets: their one home.

`make generate` (`k8s/generate.py`, `k8s/slo_values.py`) writes these values wherever a file
states them: the latency SLI's bucket in the recording rules and the budget in the burn-rate
alerts (`monitoring/rules/`, copied into the PrometheusRule), the HPA's p95 target
(`k8s/base/hpa.yaml`) and KEDA's threshold, the dashboard's SLO line and burn rate, and the
READMEs' sentences about them; `tests/k8s/test_generated.py` fails on a file that differs. The
server's latency histogram takes both the threshold and the target as bucket edges
(`inference.metrics.LATENCY_BUCKETS`), and the HPA simulation (`studies/autoscaling`) reads them
here.
"""

import math
from typing import Final

#: Latency SLO: this share of `/predict` requests, over 30 days, within `LATENCY_THRESHOLD_S`.
LATENCY_OBJECTIVE: Final = 0.99
LATENCY_THRESHOLD_S: Final = 0.01
#: The share of `/predict` requests allowed over the threshold. Rounded: 1 - 0.99 is not 0.01
#: in binary floating point, and the rules must read the same number the simulation uses.
LATENCY_BUDGET: Final = round(1 - LATENCY_OBJECTIVE, 9)

#: p99 over p95 of `/predict` on one pod, the highest on the benchmark's capacity curve from 10
#: to 40 % of a pod's capacity (1.29-1.35x: 3.65/2.72 ms at 10 %, 12.45/9.25 ms at 40 %,
#: benchmarks/results/2026-11-27-vm.md), where the HPA keeps the pods.
P99_OVER_P95: Final = 1.35
#: The HPA's target for the per-pod p95 (and KEDA's threshold): the p95 at which the p99 still
#: meets the SLO's threshold, rounded down to whole milliseconds. Whole milliseconds because
#: Kubernetes writes the target as a quantity in milli-units ("7m"), and because the target is
#: an edge of the latency histogram: there the p95 the HPA compares with it is exact, not
#: interpolated linearly inside a bucket.
HPA_P95_TARGET_S: Final = math.floor(LATENCY_THRESHOLD_S / P99_OVER_P95 * 1e3) / 1e3
