"""The drift loop on the real data, end to end: `make drift-demo` (README, "Drift loop").

Needs a trained project (`make train`: the champion in `paths.serving_bundle`, the splits, and
the feature and label tables, which hold the 2022 listings too). Starts `car-serve` with the
prediction log on and drives it only through the installed CLIs, as the Airflow DAGs do:

1. `2020`: replay the champion's own test split (2020 listings it never saw) over HTTP, then
   `car-train drift` on that window of the log: the false-alarm check;
2. `2022`: replay every labelled 2022 listing, then drift on its window, the asking prices as
   labels: drift and the error's rise must be flagged, estimated beside realized;
3. `car-train refresh-level`: the 2020 champion's forest at the level of the older 2022
   listings' newest week, gated on the newest 2022 slice; then `car-train retrain`: 2020 + 2022
   rows on index-deflated prices, gated on the same slice against the champion the refresh
   left; on promotion the serving bundle changes and the running server hot-reloads it. The
   one-scalar baseline (the 2020 champion times the median asking/predicted ratio of the older
   2022 listings) is measured on the same slice, and the second table sets the four side by
   side (`market_table`);
4. `2022-after`: replay that newest slice through the new champion; drift on its window
   against the new champion's reference (the new-market rows it was calibrated on, not trained
   on). The old champion's realized error on the same slice comes from step 2's window,
   labelled with the slice only (`2022-slice-before`: only its realized MAPE is of use, the
   rest of that run compares the old champion's traffic with the new one's reference).

The project is left as the demo found it (`restored`): the retrain moves the registry's
`champion` and `challenger` aliases and publishes into the serving folder, as it would in
production; at the end, and on failure too, the aliases go back to the versions they named and
the serving folder and the retrain's files (`paths.retrain_*`) to the bytes they held, so
`make train` afterwards publishes and records what it did before. Left behind: the demo's
results under `paths.drift/demo*`, and the retrain's MLflow run and registered version
(history, with no alias: nothing that `make train` or `make serve` reads).

Each window's summary is `paths.drift/demo-<window>/summary.json`; the headline figures go to
`paths.drift/demo.json` and are printed as a table.
Usage: `python -m scripts.drift_demo [--root DIR]` from the repository root.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from scripts.demo_restore import restored

from scripts import market_clock
from shared_schema import FIELD_NAMES
from shared_schema.bundle import read_verified
from shared_schema.serving_folder import resolve
from training.config import Params, load_params

BIN = Path(sys.executable).parent
#: The server writes its log buffer this often (seconds); a window waits for a few of these.
FLUSH_S = 0.2


class Demo:
    """The demo's steps in one trained project, against one running server."""

    def __init__(self, root: Path, url: str, log_dir: Path) -> None:
        self.root, self.url, self.log_dir = root, url, log_dir
        self.params = load_params(root / "params.yaml")
        self.out = root / self.params.paths.drift
        self.windows: dict[str, tuple[str, str]] = {}

    def replay(self, name: str, cars: Path) -> None:
        """Replay `cars` over HTTP in a seeded random order; remember the log window it fills.

        Shuffled: the 2022 scrape is sorted by brand, and the log window is chunked in the
        order the server answered.
        """
        since = utc_now()
        self.car_train("replay", "--url", self.url, "--cars", str(cars), "--shuffle", "0")
        time.sleep(5 * FLUSH_S)  # every answer of the window written out
        self.windows[name] = (since, utc_now())

    def drift(
        self, run: str, window: str, labels: Path, reference: Path | None = None
    ) -> dict[str, Any]:
        """`car-train drift` on a replayed window; the summary's headline figures."""
        since, until = self.windows[window]
        args = ["--log", str(self.log_dir), "--since", since, "--until", until]
        args += ["--labels", str(labels), "--run", f"demo-{run}"]
        if reference is not None:
            args += ["--reference", str(reference)]
        self.car_train("drift", *args)
        summary = json.loads((self.out / f"demo-{run}" / "summary.json").read_text("utf-8"))
        return headline(summary)

    def car_train(self, *args: str) -> None:
        """Run one `car-train` step in the project; a failed step ends the demo."""
        subprocess.run([str(BIN / "car-train"), *args], cwd=self.root, check=True)

    def labelled(self, source: str) -> Path:
        """The source's listings with their prices, as one replay-and-labels file."""
        paths = self.params.paths
        features = pd.read_parquet(self.root / paths.features)
        labels = pd.read_parquet(self.root / paths.labels, columns=["listing_id", "price"])
        rows = features.loc[features["source"] == source, ["listing_id", *FIELD_NAMES]]
        path = self.out / f"demo-{source}.parquet"
        rows.merge(labels, on="listing_id", validate="one_to_one").to_parquet(path)
        return path


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """What a person reads first in a drift summary."""
    return {
        "records": summary["window"]["records"],
        "labelled": summary["labels"]["labelled_records"] if summary["labels"] else 0,
        "fields": len(summary["fields"]),
        "drifting_fields": [f["field"] for f in summary["fields"] if f["drifting"]],
        "multivariate_drift": summary["multivariate"]["drifting"],
        "reference_mape": summary["reference"]["mape"],
        "estimated_mape": summary["estimated_mape"],
        "realized_mape": summary["realized_mape"],
        "retrain": summary["verdict"]["retrain"],
        "reasons": summary["verdict"]["reasons"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the demo in `--root` (default: the current directory)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=Path(), help="the trained project")
    root = parser.parse_args(argv).root.resolve()
    params = load_params(root / "params.yaml")
    paths = params.paths
    log_dir = root / paths.drift / "demo-log"
    results: dict[str, Any] = {"started_at": utc_now(), "source": params.retrain.source}
    with restored(root, params), serving(root, params, log_dir) as url:
        demo = Demo(root, url, log_dir)
        test_2020 = root / paths.splits / "test.parquet"
        demo.replay("2020", test_2020)
        results["2020"] = demo.drift("2020", "2020", test_2020)
        listings_2022 = demo.labelled(params.retrain.source)
        demo.replay("2022", listings_2022)
        results["2022"] = demo.drift("2022", "2022", listings_2022)
        before = ready(url)["model_version"]
        champion_2020 = read_verified(resolve(root / paths.serving_bundle).directory)
        demo.car_train("refresh-level")
        results["refresh"] = json.loads((root / paths.refresh_report).read_text("utf-8"))
        demo.car_train("retrain")
        results["retrain"] = json.loads((root / paths.retrain_report).read_text("utf-8"))
        # The newest promotion is the one served at the end: the refresh's version may be
        # served for a moment after the retrain has published its own.
        promoted = [results[step] for step in ("refresh", "retrain") if results[step]["promote"]]
        if promoted:
            results["served_before"] = before
            results["served_after"] = wait_for_reload(url, promoted[-1]["challenger"]["version"])
        holdout = root / paths.retrain_holdout
        results["one_scalar"] = market_clock.one_scalar(champion_2020, listings_2022, holdout)
        results["index"] = market_clock.indices(root, params)
        results["2022-slice-before"] = demo.drift("2022-slice-before", "2022", holdout)
        demo.replay("2022-after", holdout)
        reference = root / paths.retrain_reference
        results["2022-after"] = demo.drift("2022-after", "2022-after", holdout, reference)
    results["finished_at"] = utc_now()
    market_clock.plot(results["index"], root / paths.drift / "demo-market-index.png")
    (root / paths.drift / "demo.json").write_text(json.dumps(results, indent=2), "utf-8")
    print(table(results))
    print()
    print(market_clock.table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    """The windows side by side, as Markdown."""
    rows = ["2020", "2022", "2022-slice-before", "2022-after"]
    lines = [
        "| window | records | labelled | drifting fields | multivariate | reference MAPE "
        "| estimated MAPE | realized MAPE | retrain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in rows:
        w = results[name]
        lines.append(
            f"| {name} | {w['records']} | {w['labelled']} | "
            f"{len(w['drifting_fields'])} of {w['fields']} | {w['multivariate_drift']} | "
            f"{_pct(w['reference_mape'])} | {_pct(w['estimated_mape'])} | "
            f"{_pct(w['realized_mape'])} | {w['retrain']} |"
        )
    gate = results["retrain"]
    lines.append(f"\nretrain: promote={gate['promote']}: {gate['reason']}")
    if gate["promote"]:
        lines.append(f"served {results['served_before']} -> {results['served_after']}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


@contextmanager
def serving(root: Path, params: Params, log_dir: Path, **settings: str) -> Iterator[str]:
    """`car-serve` (one worker) on the serving bundle, logging every answer to `log_dir`.

    `settings`: more of the server's environment variables (`SHADOW_SHARE="1"`).
    """
    if log_dir.exists():
        for segment in log_dir.iterdir():
            segment.unlink()
    log_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        "MODEL_DIR": str(root / params.paths.serving_bundle),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
        "RELOAD_POLL_S": "1",
        "PREDICTION_LOG_DIR": str(log_dir),
        "PREDICTION_LOG_FLUSH_S": str(FLUSH_S),
        "LOG_LEVEL": "warning",
        **settings,
    }
    with (log_dir.parent / "demo-server.log").open("wb") as sink:
        process = subprocess.Popen([str(BIN / "car-serve")], env=env, stderr=sink, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ready(url) is not None, "car-serve to become ready", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def ready(url: str) -> Any:
    """/ready's JSON when it answers 200, else None."""
    try:
        # The URL is ours: http on the loopback, built in `serving`.
        with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:  # noqa: S310
            return json.loads(response.read())
    except OSError:
        return None


def wait_for_reload(url: str, version: str) -> str:
    """Wait until the server serves model `version`; that version."""
    wait_until(
        lambda: (ready(url) or {}).get("model_version") == version, f"the reload to {version}"
    )
    return version


def wait_until(
    condition: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = 60,
) -> None:
    """Poll `condition` until true; fail past `timeout` s, or if `process` (car-serve) exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"car-serve exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def utc_now() -> str:
    """Now, as the drift job's --since and --until take it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


if __name__ == "__main__":
    sys.exit(main())
