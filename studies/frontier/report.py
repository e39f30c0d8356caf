"""The frontier study's report: a table of the candidates, and MAPE against µs per car."""

import json
from pathlib import Path
from typing import Any

import numpy as np


def plot(rows: list[dict[str, Any]], target: Path) -> None:
    """MAPE (CV) against cold µs per car, one labelled point per candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        ax.errorbar(row["cold_us_p50"], row["cv_mape"], yerr=row["cv_sd"], fmt="o", capsize=3)
        ax.annotate(
            row["name"],
            (row["cold_us_p50"], row["cv_mape"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("µs per car, 20 ms between calls (p50, one core)")
    ax.set_ylabel("5-fold CV MAPE (±1 sd over folds)")
    ax.set_title("Accuracy vs serving cost of the exported graph")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    plt.close(fig)


def markdown(report: dict[str, Any]) -> str:
    """The study as a table, best CV MAPE first."""
    lines = [
        f"# Accuracy–cost frontier {report['date']} on {report['host']}",
        "",
        f"Machine: {report['machine']}. Load average before / after: {report['load_before']} / "
        f"{report['load_after']}. Commit {report['commit']}. {report['folds']}-fold CV on "
        f"{report['cv_rows']:,} train + validation rows; cost measured on the exported graph, "
        f"{report['calls']} one-car calls per figure, one core. "
        f"Run took {report['seconds']:.0f} s.",
        "",
        "| candidate | params | CV MAPE ± sd | Δ vs first (paired) | trees | val MAPE | graph MB | "
        "session MB | cold start ms | hot µs | cold µs p50 | cold µs p95 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    first = report["candidates"][0]
    for row in report["candidates"]:
        delta = np.mean(np.subtract(row["folds"], first["folds"]))
        lines.append(
            f"| {row['name']} | {json.dumps(row['params'])} | {row['cv_mape']:.4f} ± "
            f"{row['cv_sd']:.4f} | {delta:+.4f} | {row['trees']} | {row['val_mape']:.4f} | "
            f"{row['graph_mb']:.1f} | {row['session_mb']:.0f} | {row['cold_start_ms']:.0f} | "
            f"{row['hot_us_p50']:.0f} | {row['cold_us_p50']:.0f} | {row['cold_us_p95']:.0f} |"
        )
    lines += ["", f"![MAPE vs cold µs]({report['plot']})", ""]
    return "\n".join(lines)
