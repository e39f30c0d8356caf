"""Safe rollout on the real data, live evidence both ways: `make rollout-demo` (README).

Needs a trained project (`make train`). Starts `car-serve` on the serving folder with the
prediction log on and every answer also scored by the challenger (`SHADOW_SHARE=1`), and drives
it through the installed CLIs, as the Airflow DAGs do. Two scenarios, one after the other:

1. `better`: `car-train refresh-level --stage`: the 2020 champion's forest at the newest
   week's market level, past the offline gate, staged as the serving folder's challenger (the
   champion alias and `current` stay). The newest 2022 slice is replayed over HTTP
   (`car-train replay`); `car-train drift` on that window, with the asking prices as labels,
   gives both models' realized MAPE on the same labelled shadow rows and the paired-bootstrap
   interval of their difference; `car-train promote-live` decides on it. Expected: promoted,
   published, and the running server reloads it.
2. `doubled`: an injected fault, as the slow graph of the canary test is: the new champion's
   forest at twice its level (every price ×2), built with the refresh's own `at_level`, then
   registered and staged through the functions the CLI uses (`register`, the lifecycle's
   `stage`), skipping only the offline gate. The same replay, drift and `promote-live`.
   Expected: refused, and the server still serves the champion of step 1.

The replayed rows are the newest `retrain.holdout_fraction` of the 2022 listings (the
refresh's offline holdout), not the older ones: the refresh's level is the median over the
older listings' newest week, which on this data is all of them (21,388 rows), so on those the
challenger's one fitted constant would be judged on the rows it was fitted on.

Each step is timed (seconds, wall clock). The figures go to `paths.drift/rollout-demo.json`
and are printed as a table; each drift run's summary is `paths.drift/demo-rollout-<name>/`.
The project is left as the demo found it (`scripts.demo_restore.restored`): the registry's
aliases and the serving folder go back; the two registered versions stay, without an alias.
Usage: `python -m scripts.rollout_demo [--root DIR]` from the repository root.
"""

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from scripts.demo_restore import restored
from scripts.drift_demo import Demo, ready, serving, utc_now, wait_for_reload, wait_until

from shared_schema.serving_folder import CHALLENGER, read_pointer
from training.config import Params, load_params
from training.io import bundle, registry
from training.io.level_bundle import at_level
from training.io.mlflow_service import MlflowService
from training.io.retrain_data import read_slices
from training.jobs.refresh_level import PARENT_TAG
from training.lifecycle.export import log_export
from training.lifecycle.register import register
from training.lifecycle.stage import stage

#: The injected fault: every price of the challenger times this.
FAULT_RATIO = 2.0


class Rollout:
    """The demo's steps in one trained project, against one running server."""

    def __init__(self, demo: Demo, params: Params, rows: Path) -> None:
        self.demo, self.params, self.rows = demo, params, rows
        self.root, self.url = demo.root, demo.url

    def scenario(self, name: str, stage_challenger: Callable[[], str]) -> dict[str, Any]:
        """Stage a challenger, replay the rows, drift on them, `promote-live`; figures, times."""
        steps: dict[str, float] = {}
        with timed(steps, "stage"):
            challenger = stage_challenger()
        with timed(steps, "held"):
            wait_until(
                lambda: self.held() == challenger, f"the server to hold challenger {challenger}"
            )
        champion = ready(self.url)["model_version"]
        alias_while_staged = self.alias(registry.CHAMPION)
        before = self.counters()
        with timed(steps, "replay"):
            self.demo.replay(name, self.rows)
        with timed(steps, "logged"):
            wait_until(lambda: self.logged(before), "every replayed answer in the prediction log")
        counters = {key: value - before[key] for key, value in self.counters().items()}
        run = f"rollout-{name}"
        with timed(steps, "drift"):
            drift = self.demo.drift(run, name, self.rows)
        summary_file = self.root / self.params.paths.drift / f"demo-{run}" / "summary.json"
        shadow = json.loads(summary_file.read_text("utf-8"))["shadow"]
        with timed(steps, "promote_live"):
            self.demo.car_train("promote-live", "--run", f"demo-{run}")
        decision = self.decision(challenger)
        if decision["promote"]:
            with timed(steps, "reload"):
                wait_for_reload(self.url, challenger)
        return {
            "champion_version": champion,
            "champion_alias_while_staged": alias_while_staged,
            "challenger_version": challenger,
            "server": counters,
            "realized_mape": drift["realized_mape"],
            "shadow": shadow,
            "decision": decision,
            "served_after": ready(self.url)["model_version"],
            "champion_alias_after": self.alias(registry.CHAMPION),
            "staged_after": self.staged(),
            "steps_s": steps,
        }

    def refresh(self) -> str:
        """`car-train refresh-level --stage`; the version it staged."""
        self.demo.car_train("refresh-level", "--stage")
        paths = self.params.paths
        record = json.loads((self.root / paths.refresh_report).read_text("utf-8"))
        if not record["staged"]:
            raise RuntimeError(f"the refresh was not staged: {record['reason']}")
        version: str = record["challenger"]["version"]
        return version

    def doubled(self) -> str:
        """The champion's graph at `FAULT_RATIO` times its prices, registered and staged."""
        name = self.params.registry.model_name
        rows = pd.read_parquet(self.rows)
        with contextlib.chdir(self.root), tempfile.TemporaryDirectory() as scratch:
            service = MlflowService.from_params(self.params.registry)
            champion = registry.require_alias(service, name, registry.CHAMPION)
            parent_bytes, parent = registry.fetch_bundle(service, champion)
            assert parent.market is not None, "a champion exported before the market index"
            level = parent.market.served_level + math.log(FAULT_RATIO)
            # The manifest keeps the parent's index: the fault is in the graph alone.
            model_bytes, manifest = at_level(
                parent_bytes,
                parent,
                level,
                parent.market,
                rows,
                tolerance=self.params.export.parity_tolerance,
            )
            out = bundle.write(Path(scratch), model_bytes, manifest)
            with service.run("injected-fault") as tracked:
                tracked.set_tags({"stage": "injected-fault", PARENT_TAG: str(champion.version)})
                log_export(tracked, out, manifest, rows)
            through = champion.tags.get(registry.TRAINED_THROUGH_TAG)
            version = register(
                service,
                name,
                tracked.run_id,
                manifest,
                scored_on="holdout",
                trained_through=through,
            )
            stage(service, name, registry.CHALLENGER, self.params.paths.serving_bundle)
        return version

    def decision(self, version: str) -> dict[str, Any]:
        """The gate's decision as `promote-live` tagged it on the version."""
        tags = self.version_tags(version)
        return {"promote": tags["promotion"] == "promoted", "reason": tags["promotion_reason"]}

    def version_tags(self, version: str) -> dict[str, str]:
        """A registry version's tags."""
        with contextlib.chdir(self.root):
            service = MlflowService.from_params(self.params.registry)
            model = service.client.get_model_version(self.params.registry.model_name, version)
            return dict(model.tags)

    def alias(self, alias: str) -> str | None:
        """The version an alias names, or None."""
        with contextlib.chdir(self.root):
            service = MlflowService.from_params(self.params.registry)
            version = registry.version_by_alias(service, self.params.registry.model_name, alias)
            return None if version is None else str(version.version)

    def held(self) -> str | None:
        """The challenger version the server holds beside the champion, or None."""
        held = [
            sample.labels["model_version"]
            for sample in self.samples()
            if sample.name == "carprice_challenger_info" and sample.value == 1
        ]
        return held[0] if held else None

    def staged(self) -> str | None:
        """The version the serving folder's challenger pointer names, or None (withdrawn)."""
        pointer = read_pointer(self.root / self.params.paths.serving_bundle, CHALLENGER)
        return None if pointer is None else pointer.model_version

    def counters(self) -> dict[str, float]:
        """The server's counts of answers logged and lost, and of shadow runs dropped."""
        names = {
            "logged": "carprice_prediction_log_records_total",
            "log_dropped": "carprice_prediction_log_dropped_total",
            "shadow_dropped": "carprice_shadow_dropped_total",
        }
        samples = self.samples()
        return {key: sum(s.value for s in samples if s.name == name) for key, name in names.items()}

    def logged(self, before: dict[str, float]) -> bool:
        """Every replayed answer written to the log, or counted lost (`replay` sent them all)."""
        now = self.counters()
        sent = len(pd.read_parquet(self.rows, columns=["listing_id"]))
        done = now["logged"] + now["log_dropped"] - before["logged"] - before["log_dropped"]
        return done >= sent

    def samples(self) -> list[Any]:
        """Every sample of the server's /metrics."""
        # The URL is ours: http on the loopback, built by `serving`.
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:  # noqa: S310
            text = response.read().decode()
        return [s for family in text_string_to_metric_families(text) for s in family.samples]


@contextmanager
def timed(steps: dict[str, float], step: str) -> Iterator[None]:
    """Record how long the block took, in seconds, as `steps[step]`."""
    started = time.monotonic()
    yield
    steps[step] = round(time.monotonic() - started, 2)


def newest_rows(demo: Demo, params: Params) -> Path:
    """The newest 2022 slice (the refresh's holdout) with asking prices, as one replay file."""
    every = pd.read_parquet(demo.labelled(params.retrain.source))
    with contextlib.chdir(demo.root):
        _, _, newest = read_slices(params)
    path = demo.out / "rollout-demo-newest.parquet"
    every.loc[every["listing_id"].isin(newest["listing_id"])].to_parquet(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the demo in `--root` (default: the current directory)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=Path(), help="the trained project")
    root = parser.parse_args(argv).root.resolve()
    params = load_params(root / "params.yaml")
    log_dir = root / params.paths.drift / "rollout-demo-log"
    results: dict[str, Any] = {"started_at": utc_now()}
    with restored(root, params), serving(root, params, log_dir, SHADOW_SHARE="1") as url:
        demo = Demo(root, url, log_dir)
        rows = newest_rows(demo, params)
        results["replayed_rows"] = len(pd.read_parquet(rows, columns=["listing_id"]))
        rollout = Rollout(demo, params, rows)
        results["better"] = rollout.scenario("better", rollout.refresh)
        results["refresh"] = json.loads((root / params.paths.refresh_report).read_text("utf-8"))
        results["doubled"] = rollout.scenario("doubled", rollout.doubled)
    results["finished_at"] = utc_now()
    (root / params.paths.drift / "rollout-demo.json").write_text(
        json.dumps(results, indent=2), "utf-8"
    )
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    """Both scenarios side by side, as Markdown."""
    lines = [
        f"{results['replayed_rows']} newest 2022 listings replayed per scenario, "
        "every answer shadowed (SHADOW_SHARE=1)",
        "",
        "| scenario | champion | challenger | labelled shadow rows | champion MAPE "
        "| challenger MAPE | difference [95 % interval] | decision | served after |",
        "|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for name in ("better", "doubled"):
        s = results[name]
        shadow, decision = s["shadow"], s["decision"]
        lines.append(
            f"| {name} | {s['champion_version']} | {s['challenger_version']} | "
            f"{shadow['labelled_rows']} | {shadow['champion_mape']:.4f} | "
            f"{shadow['challenger_mape']:.4f} | {shadow['difference']:+.4f} "
            f"[{shadow['ci_low']:+.4f}, {shadow['ci_high']:+.4f}] | "
            f"{'promoted' if decision['promote'] else 'refused'} | {s['served_after']} |"
        )
    steps = list(results["better"]["steps_s"])
    lines += ["", "| seconds | " + " | ".join(steps) + " |", "|---|" + "---:|" * len(steps)]
    for name in ("better", "doubled"):
        times = results[name]["steps_s"]
        lines.append(f"| {name} | " + " | ".join(str(times.get(k, "-")) for k in steps) + " |")
    for name in ("better", "doubled"):
        lines.append(f"\n{name}: {results[name]['decision']['reason']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
