"""NannyML on the reference and the window: drift, estimated and realized errors, the plots.

NannyML fits each calculator on the reference (the champion's test split with its prices and
the champion's predictions), cuts the reference into chunks of `chunk_size` rows and the
window into chunks of as many, or more when it would exceed `max_chunks` of them, and sets
each alert threshold at the reference chunks' mean + `std_multiplier` × std of the same
statistic: a chunk of the window alerts when it is further from the reference than chunks of
the reference itself are. The results are handed over as tidy tables of the window's chunks
(`training.core.drift` reads them).

Calculators used:

* `UnivariateDriftCalculator`, one method per kind of field (params `drift`);
* `DataReconstructionDriftCalculator`: PCA fitted on the reference, the window's
  reconstruction error (catches changes in how fields go together, which univariate tests miss);
* `DLE` (direct loss estimation): a LightGBM model of the champion's per-row error on the
  reference, averaged over each window chunk: MAPE and MAE without labels;
* `PerformanceCalculator`: realized MAPE and MAE on the window's labelled rows.
"""

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES
from training.config import DriftParams
from training.core.drift import window_chunk_size
from training.io import files
from training.io.analysis_window import TS, Y_PRED

log = logging.getLogger(__name__)

#: The label column NannyML reads (the price, RUB).
Y_TRUE = "y_true"
METRICS = ("mape", "mae")


@dataclass(frozen=True)
class NannyResults:
    """The window's chunks as tidy tables, NannyML's warnings and the figures to write.

    Attributes:
        univariate: Per chunk and field: `chunk`, `field`, `value`, `threshold`, `alert`.
        multivariate: Per chunk: `chunk`, `value`, `threshold`, `alert`.
        performance: Per chunk: `chunk`, `first_row`, `last_row`, `first_ts`, `last_ts`,
            `estimated_mape`, `estimated_mae`, `estimated_mape_alert`, `labelled_rows`,
            `realized_mape`, `realized_mae`.
        reference_chunks: Chunks the reference was cut into (`chunk_size` rows each).
        window_chunk_size: Rows per chunk of the window (`core.drift.window_chunk_size`).
        warnings: NannyML's warnings, once each (also logged).
        figures: Makers of the plotly figures, by name (made when written).
    """

    univariate: pd.DataFrame
    multivariate: pd.DataFrame
    performance: pd.DataFrame
    reference_chunks: int
    window_chunk_size: int
    warnings: list[str]
    figures: dict[str, Callable[[], Any]] = field(default_factory=dict)


def field_kinds(rules: DriftParams) -> dict[str, tuple[str, str]]:
    """Each raw field's kind and drift method, in schema order."""
    return {
        name: ("categorical", rules.categorical_method)
        if name in CATEGORICAL_FIELDS
        else ("continuous", rules.continuous_method)
        for name in FIELD_NAMES
    }


def analyse(reference: pd.DataFrame, window: pd.DataFrame, rules: DriftParams) -> NannyResults:
    """Run the calculators (module docstring) fitted on `reference` over `window`.

    Args:
        reference: The `Car` fields, `Y_PRED` and `Y_TRUE` of every reference row.
        window: The `Car` fields, `Y_PRED`, `TS` and `Y_TRUE` (NaN where unlabelled).
        rules: The drift params.
    """
    # NannyML sends usage statistics to a third party unless this is set; set before import.
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import nannyml as nml
    from nannyml.thresholds import StandardDeviationThreshold

    threshold = StandardDeviationThreshold(
        std_lower_multiplier=None, std_upper_multiplier=rules.std_multiplier
    )
    chunker = nml.SizeBasedChunker(rules.chunk_size, incomplete="append")
    features = list(FIELD_NAMES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        univariate = nml.UnivariateDriftCalculator(
            column_names=features,
            treat_as_categorical=list(CATEGORICAL_FIELDS),
            treat_as_numerical=[n for n in features if n not in CATEGORICAL_FIELDS],
            continuous_methods=[rules.continuous_method],
            categorical_methods=[rules.categorical_method],
            chunker=chunker,
            thresholds={
                rules.continuous_method: threshold,
                rules.categorical_method: threshold,
            },
        ).fit(reference)
        multivariate = nml.DataReconstructionDriftCalculator(
            column_names=features, chunker=chunker, threshold=threshold
        ).fit(reference)
        estimator = rules.estimator
        dle = nml.DLE(
            feature_column_names=features,
            y_pred=Y_PRED,
            y_true=Y_TRUE,
            metrics=list(METRICS),
            chunker=chunker,
            thresholds=dict.fromkeys(METRICS, threshold),
            hyperparameters={
                "n_estimators": estimator.n_estimators,
                "learning_rate": estimator.learning_rate,
                "num_leaves": estimator.num_leaves,
                "n_jobs": estimator.num_threads,
                "random_state": estimator.seed,
                "verbose": -1,  # LightGBM's own chatter, not a model setting
            },
        ).fit(reference)
        realized = nml.PerformanceCalculator(
            y_pred=Y_PRED,
            y_true=Y_TRUE,
            metrics=list(METRICS),
            problem_type="regression",
            chunker=chunker,
            thresholds=dict.fromkeys(METRICS, threshold),
        ).fit(reference)
        reference_chunks = len(chunker.split(reference))
        # The thresholds come from the reference's `chunk_size` chunks (fitted above); a long
        # window is cut into at most `max_chunks` larger ones (`window_chunk_size`).
        chunker.chunk_size = window_chunk_size(len(window), rules)
        # A window shorter than one chunk is one (smaller) chunk; else the remainder joins the
        # last chunk, so no chunk is a handful of rows with a meaningless statistic.
        chunker.incomplete = "append" if len(window) >= chunker.chunk_size else "keep"
        inputs = window[[*features, Y_PRED]]
        # Plots show the reference's chunks before the window's; the tables the window's only.
        drift_result = univariate.calculate(inputs)
        multivariate_result = multivariate.calculate(inputs)
        estimated = dle.estimate(inputs)
        labelled = window[Y_TRUE].notna().any()
        measured = realized.calculate(window[[*features, Y_PRED, Y_TRUE]]) if labelled else None
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    for message in messages:
        log.warning("nannyml: %s", message)
    figures: dict[str, Callable[[], Any]] = {
        "univariate_drift": lambda: drift_result.plot(kind="drift"),
        "univariate_distribution": (lambda: drift_result.plot(kind="distribution"))
        if chunker.chunk_size == rules.chunk_size
        else _distribution_not_drawn(chunker.chunk_size, rules.chunk_size),
        "multivariate_drift": multivariate_result.plot,
        "estimated_performance": estimated.plot,
    }
    if measured is not None:
        figures["realized_performance"] = measured.plot
    return NannyResults(
        univariate=_univariate_table(_window(drift_result), field_kinds(rules)),
        multivariate=_multivariate_table(_window(multivariate_result)),
        performance=_performance_table(
            _window(estimated), None if measured is None else _window(measured), window
        ),
        reference_chunks=reference_chunks,
        window_chunk_size=chunker.chunk_size,
        warnings=messages,
        figures=figures,
    )


def _distribution_not_drawn(window_chunk: int, reference_chunk: int) -> Callable[[], Any]:
    """A figure maker that names why the distribution plot is not drawn (in `plot_errors`).

    NannyML's distribution plot cuts the reference again with the calculator's one chunker, by
    then the window's: it would show the reference in the window's chunk size against
    thresholds from its own, or fail when the reference is shorter than one window chunk.
    """

    def refuse() -> Any:
        raise ValueError(
            f"not drawn for {window_chunk:,}-row window chunks: NannyML's distribution plot "
            f"would cut the reference ({reference_chunk:,}-row chunks) to the window's size"
        )

    return refuse


def write_plots(
    figures: dict[str, Callable[[], Any]], directory: Path
) -> tuple[list[str], dict[str, str]]:
    """Write each figure as a standalone HTML file (plotly.js embedded, viewable offline).

    No PNG: plotly's PNG export (kaleido 0.2) hung indefinitely under pytest here, and a
    scheduled job must not hang on a picture.

    Returns:
        The file names written, in the order of `figures`, and the error of each figure that
        could not be made: NannyML's plotting fails on some data (an IndexError in its stacked
        bar plot on 2022 listings sorted by brand), and a missing picture must not cost the
        verdict.
    """
    names, failed = [], {}
    for name, make in figures.items():
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                figure = make()
            for warning in caught:
                log.warning("nannyml plotting %s: %s", name, warning.message)
        except Exception as exc:  # any bug in a third-party plot; named in the summary
            log.warning("nannyml could not plot %s: %r", name, exc)
            failed[name] = repr(exc)
            continue
        with files.atomic_path(directory / f"{name}.html") as tmp:
            figure.write_html(tmp, include_plotlyjs=True, full_html=True)
        names.append(f"{name}.html")
    return names, failed


def _window(result: Any) -> pd.DataFrame:
    """A NannyML result's table of the window's chunks."""
    table: pd.DataFrame = result.filter(period="analysis").to_df()
    return table


def _univariate_table(df: pd.DataFrame, kinds: dict[str, tuple[str, str]]) -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {
                "chunk": df[("chunk", "chunk", "chunk_index")].to_numpy(),
                "field": name,
                "value": df[(name, method, "value")].to_numpy(),
                "threshold": df[(name, method, "upper_threshold")].to_numpy(),
                "alert": df[(name, method, "alert")].to_numpy(dtype=bool),
            }
        )
        for name, (_, method) in kinds.items()
    ]
    return pd.concat(parts, ignore_index=True)


def _multivariate_table(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chunk": df[("chunk", "chunk_index")].to_numpy(),
            "value": df[("reconstruction_error", "value")].to_numpy(),
            "threshold": df[("reconstruction_error", "upper_threshold")].to_numpy(),
            "alert": df[("reconstruction_error", "alert")].to_numpy(dtype=bool),
        }
    )


def _performance_table(
    estimated: pd.DataFrame, measured: pd.DataFrame | None, window: pd.DataFrame
) -> pd.DataFrame:
    first = estimated[("chunk", "start_index")].astype(int).to_numpy()
    last = estimated[("chunk", "end_index")].astype(int).to_numpy()
    spans = [window.iloc[a : b + 1] for a, b in zip(first, last, strict=True)]
    table = pd.DataFrame(
        {
            "chunk": estimated[("chunk", "chunk_index")].to_numpy(),
            "first_row": first,
            "last_row": last,
            "first_ts": [span[TS].min() for span in spans],
            "last_ts": [span[TS].max() for span in spans],
            "estimated_mape": estimated[("mape", "value")].to_numpy(),
            "estimated_mae": estimated[("mae", "value")].to_numpy(),
            "estimated_mape_alert": estimated[("mape", "alert")].to_numpy(dtype=bool),
            "labelled_rows": [int(span[Y_TRUE].notna().sum()) for span in spans],
        }
    )
    for metric in METRICS:
        table[f"realized_{metric}"] = (
            float("nan") if measured is None else measured[(metric, "value")].to_numpy()
        )
    return table
