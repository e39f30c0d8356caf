"""Evaluation metrics and error tables: pure functions of prices."""

import numpy as np
import pandas as pd


def regression_metrics(price: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Errors in RUB and on log price.

    Args:
        price: Actual prices (RUB, positive).
        predicted: Predicted prices (RUB, positive).

    Returns:
        mape, median_ape, rmse_rub, mae_rub, rmse_log, mae_log, r2_log and the row count.
    """
    price = np.asarray(price, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    ape = np.abs(predicted - price) / price
    log_error = np.log(predicted) - np.log(price)
    log_price = np.log(price)
    total = float(np.sum((log_price - log_price.mean()) ** 2))
    return {
        "mape": float(ape.mean()),
        "median_ape": float(np.median(ape)),
        "rmse_rub": float(np.sqrt(np.mean((predicted - price) ** 2))),
        "mae_rub": float(np.mean(np.abs(predicted - price))),
        "rmse_log": float(np.sqrt(np.mean(log_error**2))),
        "mae_log": float(np.mean(np.abs(log_error))),
        "r2_log": float(1.0 - np.sum(log_error**2) / total) if total > 0 else float("nan"),
        "rows": float(len(price)),
    }


def error_by_group(frame: pd.DataFrame, group: str, *, min_rows: int = 1) -> pd.DataFrame:
    """Error table per value of `group`.

    Args:
        frame: Columns `price`, `predicted` and `group`.
        group: The column to group by.
        min_rows: Groups with fewer rows are pooled into "(other)".

    Returns:
        One row per group: rows, mape, median_ape, mean signed log error (bias), sorted by rows.
    """
    keys = frame[group].astype(str)
    counts = keys.value_counts()
    keys = keys.where(keys.map(counts) >= min_rows, "(other)")
    work = pd.DataFrame(
        {
            group: keys,
            "ape": np.abs(frame["predicted"] - frame["price"]) / frame["price"],
            "log_error": np.log(frame["predicted"]) - np.log(frame["price"]),
        }
    )
    table = work.groupby(group, observed=True).agg(
        rows=("ape", "size"),
        mape=("ape", "mean"),
        median_ape=("ape", "median"),
        bias_log=("log_error", "mean"),
    )
    return table.sort_values("rows", ascending=False).reset_index()


def price_deciles(price: pd.Series) -> pd.Series:
    """Decile label (1 = cheapest tenth … 10) of each actual price."""
    ranks = price.rank(method="first")
    return pd.Series(
        pd.qcut(ranks, 10, labels=False).astype(int) + 1, index=price.index, name="decile"
    )


def error_by_decile(frame: pd.DataFrame) -> pd.DataFrame:
    """Error table per decile of the actual price, with each decile's price range.

    With `lower`/`upper` columns (the price interval), also each decile's interval coverage.
    """
    work = frame.assign(decile=price_deciles(frame["price"]))
    table = error_by_group(work, "decile")
    table["decile"] = table["decile"].astype(int)
    ranges = work.groupby("decile")["price"].agg(price_min="min", price_max="max")
    if {"lower", "upper"} <= set(frame.columns):
        inside = (work["price"] >= work["lower"]) & (work["price"] <= work["upper"])
        ranges["interval_coverage"] = inside.groupby(work["decile"]).mean()
    return table.merge(ranges, left_on="decile", right_index=True).sort_values("decile")
