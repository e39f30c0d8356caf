"""The pure parts of `car-train drift`: the label join and the retrain rules."""

import msgspec
import numpy as np
import pandas as pd
import pytest

from training.config import Params
from training.core.drift import FieldDrift, MultivariateDrift, decide
from training.core.labels import OUTCOMES, join_labels


def _field(name: str, drifting: bool) -> FieldDrift:
    alerts = [drifting, drifting]
    return FieldDrift(
        field=name,
        kind="continuous",
        method="jensen_shannon",
        threshold=0.1,
        statistics=[0.2 if drifting else 0.05] * 2,
        alerts=alerts,
        drifting=drifting,
    )


_QUIET = MultivariateDrift(threshold=1.0, errors=[0.5, 0.5], alerts=[False, False], drifting=False)


def test_join_labels_puts_every_label_row_in_one_outcome() -> None:
    """Each bad label is counted under its own outcome; only clean ones price a record."""
    record_ids = pd.Series(["a", "b", "c", "c", "d", "e"])
    labels = pd.DataFrame(
        {
            "listing_id": ["a", "b", "x", "c", "d", "d", None, "e"],
            "price": [100.0, 0.0, 5.0, 7.0, 1.0, 2.0, 3.0, np.nan],
        }
    )
    prices, join = join_labels(record_ids, labels, "listing_id", "labels.parquet")
    assert join.outcomes == {
        "missing_id": 1,
        "duplicate_id": 2,
        "missing_price": 1,
        "non_positive_price": 1,
        "unknown_id": 1,
        "ambiguous_id": 1,
        "matched": 1,
    }
    assert list(join.outcomes) == list(OUTCOMES)
    assert join.examples["missing_id"] == ["row 6"]
    assert join.examples["ambiguous_id"] == ["c"]
    assert prices.tolist()[0] == 100.0
    assert np.isnan(prices[1:]).all()
    assert (join.labelled_records, join.unlabelled_records) == (1, 5)


def test_join_labels_reads_text_prices_as_missing() -> None:
    """A price that is not a number is `missing_price`, never a crash or a silent drop."""
    labels = pd.DataFrame({"request_id": ["a", "b"], "price": ["1000", "n/a"]})
    prices, join = join_labels(pd.Series(["a", "b"]), labels, "request_id", "labels.csv")
    assert join.outcomes["matched"] == 1
    assert join.outcomes["missing_price"] == 1
    assert prices[0] == 1000.0


def test_few_drifting_fields_and_steady_error_keep_the_model(drift_params: Params) -> None:
    """One of eight fields drifting (below 25 %) and the reference's MAPE: no retrain."""
    fields = [_field(f"f{i}", i == 0) for i in range(8)]
    verdict = decide(
        fields,
        _QUIET,
        reference_mape=0.2,
        estimated_mape=0.21,
        realized_mape=None,
        labelled_rows=0,
        rules=drift_params.drift,
    )
    assert not verdict.retrain
    assert verdict.action == "none"
    assert verdict.reasons == []
    assert [rule.rule for rule in verdict.rules] == [
        "drifting_fields_share",
        "multivariate",
        "estimated_mape",
        "realized_mape",
    ]


@pytest.mark.parametrize(
    ("drifting", "estimated", "realized", "labelled", "reason", "action"),
    [
        (2, 0.2, None, 0, "2 of 8 fields drift", "retrain"),
        (0, 0.25, None, 0, "estimated (DLE) MAPE 0.2500", "retrain"),
        (0, 0.2, 0.3, 1000, "realized MAPE 0.3000", "refresh"),
    ],
)
def test_each_rule_alone_asks_to_retrain(
    drift_params: Params,
    drifting: int,
    estimated: float,
    realized: float | None,
    labelled: int,
    reason: str,
    action: str,
) -> None:
    """Drifting fields or a DLE estimate ask for a retrain; a realized MAPE alone, a refresh.

    DLE estimates the error from the features alone: it cannot see a level shift, so its rise
    is the cars' shape moving, not the market's level.
    """
    fields = [_field(f"f{i}", i < drifting) for i in range(8)]
    verdict = decide(
        fields,
        _QUIET,
        reference_mape=0.2,
        estimated_mape=estimated,
        realized_mape=realized,
        labelled_rows=labelled,
        rules=drift_params.drift,
    )
    assert verdict.retrain
    assert verdict.action == action
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith(reason)


def test_error_and_shape_moving_together_follow_the_rule(drift_params: Params) -> None:
    """Fields drifting and the realized error up together: `drift.error_and_shape` decides."""
    fields = [_field(f"f{i}", i < 4) for i in range(8)]
    for rule in ("retrain", "refresh"):
        rules = msgspec.structs.replace(drift_params.drift, error_and_shape=rule)
        verdict = decide(
            fields,
            _QUIET,
            reference_mape=0.2,
            estimated_mape=0.2,
            realized_mape=0.4,
            labelled_rows=1000,
            rules=rules,
        )
        assert verdict.action == rule


def test_an_estimated_error_rise_beside_the_realized_one_is_shape_too(
    drift_params: Params,
) -> None:
    """DLE and realized MAPE both up, no field drifting: both kinds moved, the rule decides."""
    for rule in ("retrain", "refresh"):
        rules = msgspec.structs.replace(drift_params.drift, error_and_shape=rule)
        verdict = decide(
            [_field("f0", False)],
            _QUIET,
            reference_mape=0.2,
            estimated_mape=0.4,
            realized_mape=0.4,
            labelled_rows=1000,
            rules=rules,
        )
        assert verdict.action == rule


def test_realized_mape_needs_enough_labels(drift_params: Params) -> None:
    """A bad realized MAPE on fewer labels than `min_labelled_rows` does not decide alone."""
    verdict = decide(
        [_field("f0", False)],
        _QUIET,
        reference_mape=0.2,
        estimated_mape=0.2,
        realized_mape=0.9,
        labelled_rows=drift_params.drift.min_labelled_rows - 1,
        rules=drift_params.drift,
    )
    assert not verdict.retrain
    assert "fewer than" in verdict.rules[-1].detail


def test_multivariate_drift_asks_to_retrain(drift_params: Params) -> None:
    """The reconstruction error alerting in most chunks triggers a retrain on its own."""
    loud = MultivariateDrift(threshold=1.0, errors=[2.0, 2.0], alerts=[True, True], drifting=True)
    verdict = decide(
        [_field("f0", False)],
        loud,
        reference_mape=0.2,
        estimated_mape=0.2,
        realized_mape=None,
        labelled_rows=0,
        rules=drift_params.drift,
    )
    assert verdict.action == "retrain"
    assert verdict.reasons == ["reconstruction error alerts in 2 of 2 chunks"]
