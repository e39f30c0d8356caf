"""NannyML's chunking of the reference and the window (`training.io.nannyml_drift.analyse`)."""

from datetime import timedelta

import msgspec
import numpy as np
import pandas as pd
import pytest

from training.config import DriftParams, Params
from training.core.drift import window_chunk_size
from training.io import nannyml_drift
from training.io.analysis_window import TS, Y_PRED

from ..drift_windows import START, synthetic_cars


def _rules(drift_params: Params, **changes: int) -> DriftParams:
    return msgspec.structs.replace(drift_params.drift, **changes)


def _priced(rows: int, seed: int) -> pd.DataFrame:
    """Synthetic cars with a prediction, a label 10 % off it and a timestamp a minute apart."""
    frame = synthetic_cars(rows, seed)
    frame[Y_PRED] = np.random.default_rng(seed).uniform(5e5, 3e6, rows)
    frame[nannyml_drift.Y_TRUE] = frame[Y_PRED] / 1.1
    frame[TS] = [START + timedelta(minutes=i) for i in range(rows)]
    return frame


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(1, 500), (99_999, 500), (100_000, 500), (100_001, 501), (1_000_000, 5000)],
)
def test_window_chunk_size_grows_only_past_max_chunks(
    drift_params: Params, rows: int, expected: int
) -> None:
    """Up to max_chunks × chunk_size rows the chunks keep chunk_size; beyond, at most max_chunks."""
    rules = _rules(drift_params, chunk_size=500, max_chunks=200)
    size = window_chunk_size(rows, rules)
    assert size == expected
    assert rows // size <= rules.max_chunks


def test_long_window_is_cut_into_at_most_max_chunks_larger_chunks(drift_params: Params) -> None:
    """A 1000-row window with max_chunks 4 gets 250-row chunks; the reference keeps 100-row.

    NannyML's distribution plot would cut the reference to the window's size: it names why not.
    """
    rules = _rules(drift_params, chunk_size=100, max_chunks=4)
    reference = _priced(1000, seed=1).drop(columns=[TS])
    results = nannyml_drift.analyse(reference, _priced(1000, seed=2), rules)
    assert results.window_chunk_size == 250
    assert results.reference_chunks == 10
    assert len(results.performance) == 4
    assert results.univariate["chunk"].nunique() == 4
    assert results.performance["first_row"].tolist() == [0, 250, 500, 750]
    with pytest.raises(ValueError, match="not drawn for 250-row window chunks"):
        results.figures["univariate_distribution"]()


def test_short_window_keeps_the_configured_chunk_size(drift_params: Params) -> None:
    """A 300-row window under max_chunks × chunk_size rows is cut into chunk_size-row chunks."""
    rules = _rules(drift_params, chunk_size=100, max_chunks=4)
    reference = _priced(1000, seed=1).drop(columns=[TS])
    results = nannyml_drift.analyse(reference, _priced(300, seed=2), rules)
    assert results.window_chunk_size == 100
    assert len(results.performance) == 3
