"""Drift findings and the retrain verdict: pure functions over NannyML's per-chunk tables.

`training.io.nannyml_drift` runs NannyML and hands over tidy tables of the window's chunks
(one row per chunk, or per chunk and field); the rules that turn them into a verdict are here,
as written down in training/README.md ("Drift"):

* a field drifts when at least `chunk_alert_share` of the window's chunks alert on it (its
  statistic above the reference chunks' mean + `std_multiplier` × std), and so does the
  multivariate reconstruction error;
* the model must change when at least `drifting_fields_share` of the fields drift, when the
  multivariate error drifts (`retrain_on_multivariate`), or when the window's MAPE (estimated,
  or realized with at least `min_labelled_rows` labels) exceeds the reference MAPE ×
  `max_mape_ratio`;
* how (`Verdict.action`): the realized MAPE is the error rule, the others see the cars' shape
  move (the estimated MAPE too: DLE estimates the error from the features alone, so it cannot
  see a level shift and rises only when the cars move); the error alone asks for
  `error_alone` (a level refresh: the market moved, the cars did not), the shape for a
  retrain, both for `error_and_shape`.
"""

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from training.config import DriftParams
from training.records import Action


def window_chunk_size(window_rows: int, rules: DriftParams) -> int:
    """Rows per chunk of a window: `chunk_size`, larger when the window would exceed `max_chunks`.

    NannyML's calculators and plots cost per chunk (one plot trace per chunk and field), so a
    window of a million records in 500-row chunks never finishes; past `max_chunks` × `chunk_size`
    rows the chunks grow instead, and the window is never cut into more than `max_chunks`.
    """
    return max(rules.chunk_size, math.ceil(window_rows / rules.max_chunks))


class _Finding(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A part of the drift summary: immutable, unknown keys rejected when read back."""


class FieldDrift(_Finding, frozen=True):
    """One raw field's univariate drift over the window's chunks.

    Attributes:
        field: The `Car` field.
        kind: "continuous" or "categorical" (the method differs).
        method: NannyML's drift method.
        threshold: The alert threshold (reference chunks' mean + k × std).
        statistics: The statistic per window chunk, in chunk order.
        alerts: Whether each chunk's statistic is above the threshold.
        drifting: At least `chunk_alert_share` of the chunks alert.
    """

    field: str
    kind: str
    method: str
    threshold: float | None
    statistics: list[float | None]
    alerts: list[bool]
    drifting: bool


class MultivariateDrift(_Finding, frozen=True):
    """The PCA reconstruction error (NannyML data reconstruction) over the window's chunks."""

    threshold: float | None
    errors: list[float | None]
    alerts: list[bool]
    drifting: bool


class ChunkPerformance(_Finding, frozen=True):
    """One window chunk: its rows, and the estimated (DLE) and realized errors.

    Realized values are None without labels in the chunk.
    """

    chunk: int
    first_row: int
    last_row: int
    rows: int
    first_ts: str | None
    last_ts: str | None
    estimated_mape: float | None
    estimated_mae: float | None
    estimated_mape_alert: bool
    labelled_rows: int
    realized_mape: float | None
    realized_mae: float | None


class RuleCheck(_Finding, frozen=True):
    """One retrain rule as it was checked: the measured value against its limit."""

    rule: str
    value: float | None
    limit: float
    triggered: bool
    detail: str


#: The rule that sees the market's level move: the error measured on labels. Every other rule
#: sees the traffic's shape (its fields; DLE's estimate is made from the fields alone).
ERROR_RULE = "realized_mape"


class Verdict(_Finding, frozen=True):
    """Whether the model must change, why, every rule checked, and how (the action).

    The action: `drift.error_alone` when only the realized error rule triggered (a market
    level moved, the cars did not), a retrain when only shape rules did (fields, the
    reconstruction error, DLE's estimate), `drift.error_and_shape` when both.
    """

    retrain: bool
    reasons: list[str]
    rules: list[RuleCheck]
    action: Action = "none"


def optional_float(value: object) -> float | None:
    """A number as a JSON-safe float; None for missing, NaN or infinite."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _drifting(alerts: Sequence[bool], share: float) -> bool:
    return bool(alerts) and sum(alerts) >= share * len(alerts)


def field_drift(
    univariate: pd.DataFrame, kinds: dict[str, tuple[str, str]], rules: DriftParams
) -> list[FieldDrift]:
    """Each field's drift from the window's univariate table.

    Args:
        univariate: One row per window chunk and field: `chunk`, `field`, `value`,
            `threshold`, `alert`.
        kinds: Field → (kind, method), in the order to report.
        rules: The drift params (`chunk_alert_share`).
    """
    found = []
    for field, (kind, method) in kinds.items():
        rows = univariate[univariate["field"] == field].sort_values("chunk")
        alerts = [bool(alert) for alert in rows["alert"]]
        thresholds = rows["threshold"].dropna()
        found.append(
            FieldDrift(
                field=field,
                kind=kind,
                method=method,
                threshold=optional_float(thresholds.iloc[0]) if len(thresholds) else None,
                statistics=[optional_float(value) for value in rows["value"]],
                alerts=alerts,
                drifting=_drifting(alerts, rules.chunk_alert_share),
            )
        )
    return found


def multivariate_drift(multivariate: pd.DataFrame, rules: DriftParams) -> MultivariateDrift:
    """The reconstruction error's drift from the window's table (`chunk`, `value`, ...)."""
    rows = multivariate.sort_values("chunk")
    alerts = [bool(alert) for alert in rows["alert"]]
    thresholds = rows["threshold"].dropna()
    return MultivariateDrift(
        threshold=optional_float(thresholds.iloc[0]) if len(thresholds) else None,
        errors=[optional_float(value) for value in rows["value"]],
        alerts=alerts,
        drifting=_drifting(alerts, rules.chunk_alert_share),
    )


def chunk_performance(performance: pd.DataFrame) -> list[ChunkPerformance]:
    """The window's chunks with their errors (one table row per chunk, see `ChunkPerformance`)."""
    return [
        ChunkPerformance(
            chunk=int(row["chunk"]),
            first_row=int(row["first_row"]),
            last_row=int(row["last_row"]),
            rows=int(row["last_row"]) - int(row["first_row"]) + 1,
            first_ts=_iso(row["first_ts"]),
            last_ts=_iso(row["last_ts"]),
            estimated_mape=optional_float(row["estimated_mape"]),
            estimated_mae=optional_float(row["estimated_mae"]),
            estimated_mape_alert=bool(row["estimated_mape_alert"]),
            labelled_rows=int(row["labelled_rows"]),
            realized_mape=optional_float(row["realized_mape"]),
            realized_mae=optional_float(row["realized_mae"]),
        )
        for row in performance.sort_values("chunk").to_dict("records")
    ]


def _iso(moment: Any) -> str | None:
    return None if moment is None or pd.isna(moment) else pd.Timestamp(moment).isoformat()


def window_mape(chunks: Sequence[ChunkPerformance]) -> float | None:
    """The window's estimated MAPE: the chunks' estimates weighted by their rows."""
    known = [(c.estimated_mape, c.rows) for c in chunks if c.estimated_mape is not None]
    if not known:
        return None
    values, weights = zip(*known, strict=True)
    return float(np.average(values, weights=weights))


def decide(
    fields: Sequence[FieldDrift],
    multivariate: MultivariateDrift,
    *,
    reference_mape: float,
    estimated_mape: float | None,
    realized_mape: float | None,
    labelled_rows: int,
    rules: DriftParams,
) -> Verdict:
    """Apply the retrain rules (module docstring) to the window's findings.

    Args:
        fields: Each field's drift.
        multivariate: The reconstruction error's drift.
        reference_mape: The champion's MAPE on the reference (its test split).
        estimated_mape: The window's DLE-estimated MAPE; None when it could not be estimated.
        realized_mape: The window's MAPE on its labelled rows; None without labels.
        labelled_rows: Rows with a label.
        rules: The drift params.
    """
    drifting = [f.field for f in fields if f.drifting]
    share = len(drifting) / len(fields) if fields else 0.0
    limit = reference_mape * rules.max_mape_ratio
    checks = [
        RuleCheck(
            rule="drifting_fields_share",
            value=share,
            limit=rules.drifting_fields_share,
            triggered=share >= rules.drifting_fields_share,
            detail=f"{len(drifting)} of {len(fields)} fields drift"
            + (f" ({', '.join(drifting)})" if drifting else "")
            + f"; retrain from {rules.drifting_fields_share:.0%} of the fields",
        ),
        RuleCheck(
            rule="multivariate",
            value=float(sum(multivariate.alerts)),
            limit=rules.chunk_alert_share * len(multivariate.alerts),
            triggered=rules.retrain_on_multivariate and multivariate.drifting,
            detail=f"reconstruction error alerts in {sum(multivariate.alerts)} of "
            f"{len(multivariate.alerts)} chunks"
            + ("" if rules.retrain_on_multivariate else " (not a retrain rule: params)"),
        ),
        _mape_check("estimated_mape", estimated_mape, limit, reference_mape, "estimated (DLE)"),
    ]
    if labelled_rows >= rules.min_labelled_rows:
        checks.append(
            _mape_check("realized_mape", realized_mape, limit, reference_mape, "realized")
        )
    else:
        checks.append(
            RuleCheck(
                rule="realized_mape",
                value=realized_mape,
                limit=limit,
                triggered=False,
                detail=f"{labelled_rows} labelled rows, fewer than the "
                f"{rules.min_labelled_rows} the rule needs",
            )
        )
    reasons = [check.detail for check in checks if check.triggered]
    shape = any(c.triggered for c in checks if c.rule != ERROR_RULE)
    error = any(c.triggered for c in checks if c.rule == ERROR_RULE)
    action: Action = "none"
    if shape and error:
        action = rules.error_and_shape
    elif shape:
        action = "retrain"
    elif error:
        action = rules.error_alone
    return Verdict(retrain=bool(reasons), reasons=reasons, rules=checks, action=action)


def _mape_check(
    rule: str, value: float | None, limit: float, reference_mape: float, what: str
) -> RuleCheck:
    if value is None:
        return RuleCheck(
            rule=rule, value=None, limit=limit, triggered=False, detail=f"no {what} MAPE"
        )
    return RuleCheck(
        rule=rule,
        value=value,
        limit=limit,
        triggered=value > limit,
        detail=f"{what} MAPE {value:.4f} vs reference {reference_mape:.4f} "
        f"(retrain above {limit:.4f})",
    )
