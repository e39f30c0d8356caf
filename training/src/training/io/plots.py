"""Evaluation plots as PNG files (matplotlib, headless)."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared_schema.market import MarketIndex


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display; chosen when plotting, not at import
    import matplotlib.pyplot as plt

    return plt


def predicted_vs_actual(frame: pd.DataFrame, path: Path) -> Path:
    """Log-log scatter of predicted against actual price, with the identity line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(frame["price"], frame["predicted"], s=3, alpha=0.3)
    low = float(min(frame["price"].min(), frame["predicted"].min()))
    high = float(max(frame["price"].max(), frame["predicted"].max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    ax.set(xscale="log", yscale="log", xlabel="actual price, RUB", ylabel="predicted price, RUB")
    ax.set_title("Test split: predicted vs actual")
    return _save(fig, path)


def residuals_by_brand(frame: pd.DataFrame, path: Path, top: int = 20) -> Path:
    """Box plot of log residuals (predicted / actual) for the most frequent brands."""
    plt = _pyplot()
    brands = frame["brand"].value_counts().index[:top]
    residual = np.log(frame["predicted"]) - np.log(frame["price"])
    data = [residual[frame["brand"] == b].to_numpy() for b in brands]
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(brands) + 1), list(brands), rotation=60, ha="right")
    ax.axhline(0.0, color="black", linewidth=1)
    ax.set(ylabel="log(predicted) − log(actual)", title=f"Residuals, top {top} brands")
    return _save(fig, path)


def error_by_decile(table: pd.DataFrame, path: Path) -> Path:
    """Bar chart of MAPE and median APE per decile of the actual price."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    x = table["decile"].to_numpy()
    ax.bar(x - 0.2, table["mape"], width=0.4, label="MAPE")
    ax.bar(x + 0.2, table["median_ape"], width=0.4, label="median APE")
    ax.set_xticks(x)
    ax.set(xlabel="price decile (1 = cheapest)", ylabel="error", title="Error by price decile")
    ax.legend()
    return _save(fig, path)


def feature_importance(importance: pd.Series, path: Path) -> Path:
    """Horizontal bar chart of the booster's gain importance per raw field."""
    plt = _pyplot()
    ordered = importance.sort_values()
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.barh(ordered.index, ordered.to_numpy() / ordered.sum())
    ax.set(xlabel="share of total gain", title="Feature importance (gain)")
    return _save(fig, path)


def market_index(indices: dict[str, MarketIndex], base: str, path: Path) -> Path:
    """Each index's levels by period as ratios to `base`'s level, its served level marked.

    The periods are categories on the x axis (months apart or a day apart alike), so no line
    pretends to know the market between them. Only levels and dates: no listing is drawn.
    """
    plt = _pyplot()
    periods = sorted({p for index in indices.values() for p in index.periods})
    fig, ax = plt.subplots(figsize=(7, 4))
    for offset, ((name, index), marker) in enumerate(zip(indices.items(), "os^", strict=False)):
        x = [periods.index(p) + 0.08 * offset for p in index.periods]
        ratios = np.exp(np.asarray(index.levels) - index.level_of(base))
        ax.plot(x, ratios, marker=marker, linestyle="none", label=f"{name}: level by day")
        served = float(np.exp(index.served_level - index.level_of(base)))
        ax.axhline(served, color=f"C{offset}", linewidth=0.8, linestyle="--")
        ax.annotate(
            f"{name} serves x{served:.3f} ({index.market_date})",
            (0.2, served),
            textcoords="offset points",
            xytext=(0, 4 - 14 * offset),
            color=f"C{offset}",
        )
    ax.set_xticks(range(len(periods)), periods)
    ax.set(ylabel=f"price level, {base} = 1", title="Market index: median log residual by day")
    ax.legend(loc="center right")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
