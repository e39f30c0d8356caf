"""Live evidence: champion and challenger on the same labelled shadow rows, paired bootstrap.

Each shadowed request was priced by both models (the prediction log's `price_rub` and
`challenger_price_rub`); once its label is known, both errors are known for the same car. The
difference of the two MAPEs is estimated with a paired bootstrap: rows are resampled with
replacement, the same rows for both models, so the interval reflects how much the difference
depends on which cars were seen, not the spread of each model's errors on its own.

Pure: numpy arrays in, a Struct out (`car-train drift` writes it into `summary.json`).
"""

import msgspec
import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


class ShadowComparison(msgspec.Struct, frozen=True, kw_only=True):
    """Realized MAPE of champion and challenger on the same labelled shadow rows.

    Attributes:
        champion_version: The version that answered (the log's `model_version`).
        challenger_version: The version scored in shadow.
        labelled_rows: Shadow rows with a label: the rows both MAPEs are measured on.
        champion_mape: The champion's realized MAPE on them.
        challenger_mape: The challenger's.
        difference: challenger_mape - champion_mape (negative: the challenger is better).
        ci_low: The lower bound of the difference's paired-bootstrap interval.
        ci_high: The upper bound.
        confidence: The interval's nominal coverage.
        resamples: Bootstrap resamples drawn.
    """

    champion_version: str
    challenger_version: str
    labelled_rows: int
    champion_mape: float
    challenger_mape: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int


def compare(
    y_true: Floats,
    champion: Floats,
    challenger: Floats,
    *,
    versions: tuple[str, str],
    confidence: float,
    resamples: int,
    seed: int,
) -> ShadowComparison:
    """Both MAPEs on the same rows and a percentile paired-bootstrap interval of their gap.

    Args:
        y_true: Labels (RUB), all > 0.
        champion: The champion's prices for the same rows.
        challenger: The challenger's prices for the same rows.
        versions: (champion version, challenger version).
        confidence: Nominal coverage of the interval, in (0, 1).
        resamples: Bootstrap resamples (>= 1).
        seed: The resampling's seed (the same rows give the same interval).

    Raises:
        ValueError: No rows, arrays of different lengths, or a label <= 0.
    """
    if not len(y_true) == len(champion) == len(challenger):
        raise ValueError("labels and both models' prices must have the same length")
    if len(y_true) == 0:
        raise ValueError("no labelled shadow rows to compare on")
    if np.any(y_true <= 0):
        raise ValueError("labels must be positive prices")
    # Per-row gap of absolute percentage errors: the mean of a resample is that resample's
    # MAPE difference, so one resampling of the gaps is the paired bootstrap.
    champion_ape = np.abs(champion - y_true) / y_true
    challenger_ape = np.abs(challenger - y_true) / y_true
    gaps = challenger_ape - champion_ape
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # In blocks: all resamples at once would hold resamples x rows indices in memory.
    block = max(1, 1_000_000 // len(gaps))
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        picks = rng.integers(0, len(gaps), size=(count, len(gaps)))
        means[start : start + count] = gaps[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return ShadowComparison(
        champion_version=versions[0],
        challenger_version=versions[1],
        labelled_rows=len(gaps),
        champion_mape=float(champion_ape.mean()),
        challenger_mape=float(challenger_ape.mean()),
        difference=float(gaps.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        resamples=resamples,
    )
