"""Live evidence both ways: `scripts/rollout_demo.py` on a synthetic project, real processes.

The project's 2022 cars are its 2020 cars at 1.5 times the price (`level_shifted_markets`), run
to a published 2020 champion. The demo starts `car-serve` (prediction log on, every answer
shadowed), stages `car-train refresh-level --stage`'s challenger, replays the newest 2022 slice
over HTTP, runs `car-train drift` on that window of the log with the asking prices as labels,
and `car-train promote-live`; then the same for the new champion's forest at twice its prices.
The better challenger must be promoted and served; the doubled one refused and never served.
First, a refresh the offline gate refuses (the newest 2022 rows back at 2020's prices) must not
be staged at all.
"""

import contextlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shared_schema.bundle import read_verified
from shared_schema.serving_folder import CHALLENGER, resolve
from training.cli import main
from training.config import load_params
from training.io import registry
from training.io.mlflow_service import MlflowService
from training.io.retrain_data import read_slices

from ..training.jobs.conftest import LEVEL_SHIFT_PROJECT, params_variant, published_project
from ..training.raw_markets import LEVEL_SHIFT, level_shifted_markets
from .conftest import run_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.needs("car-serve")]

#: Cars per market: the newest 2022 slice (the replayed rows) is a fifth of them.
_N = 400
#: Few rows: 10-car drift chunks (the 2020 test split is 40 cars), and 50 labelled shadow rows
#: for the live gate (the slice has 80).
_SMALL_WINDOWS: dict[str, dict[str, Any]] = {
    "drift": {"chunk_size": 10, "min_labelled_rows": 50},
    "rollout": {"min_labelled_rows": 50},
}


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, fast_training: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The synthetic project run to a published 2020 champion (version 1)."""
    overrides = {**fast_training, **LEVEL_SHIFT_PROJECT, **_SMALL_WINDOWS}
    return published_project(tmp_path_factory, "rollout", level_shifted_markets(_N), overrides)


@pytest.fixture(scope="module")
def demo(project: dict[str, Any]) -> dict[str, Any]:
    """The demo's `rollout-demo.json` on the project, and what it restored."""
    root: Path = project["root"]
    params = load_params(root / "params.yaml")
    served_before = _served(params)
    print(run_demo("rollout_demo", root, timeout=600))
    figures = json.loads((params.paths.drift / "rollout-demo.json").read_text("utf-8"))
    return {"figures": figures, "before": served_before, "after": _served(params)}


def _served(params: Any) -> dict[str, Any]:
    """The champion alias, the bundle `current` names, and whether a challenger is staged."""
    service = MlflowService.from_params(params.registry)
    champion = registry.require_alias(service, params.registry.model_name, registry.CHAMPION)
    folder = params.paths.serving_bundle
    return {
        "champion": str(champion.version),
        "current": read_verified(resolve(folder).directory).manifest.sha256,
        "staged": (folder / CHALLENGER).exists(),
    }


def test_a_refresh_the_offline_gate_refuses_is_not_staged(project: dict[str, Any]) -> None:
    """--stage with the newest 2022 rows at 2020's prices: refused offline, nothing staged."""
    params = load_params(project["root"] / "params.yaml")
    with contextlib.chdir(project["root"]):
        _, _, newest = read_slices(params)
    labels = pd.read_parquet(params.paths.labels)
    labels.loc[labels["listing_id"].isin(newest["listing_id"]), "price"] /= LEVEL_SHIFT
    target = params.paths.labels.with_name("labels-newest-at-2020.parquet")
    labels.to_parquet(target)
    path, variant = params_variant(project, "newest-at-2020", paths={"labels": str(target)})
    before = _served(variant)
    assert main(["--params", path, "refresh-level", "--stage"]) == 0
    record = json.loads(variant.paths.refresh_report.read_text("utf-8"))
    assert (record["staged"], record["promote"]) == (False, False)
    assert record["reason"].startswith("not better on the new market"), record["reason"]
    assert _served(variant) == before
    assert before == {"champion": "1", "current": before["current"], "staged": False}


def test_a_better_challenger_is_staged_shadowed_and_promoted(demo: dict[str, Any]) -> None:
    """refresh-level --stage: staged, not promoted; its live interval below zero: promoted."""
    figures = demo["figures"]
    refresh, better = figures["refresh"], figures["better"]
    assert (refresh["staged"], refresh["promote"]) == (True, False), refresh["reason"]
    assert refresh["champion_version_after"] == refresh["parent_version"] == "1"
    assert better["champion_version"] == better["champion_alias_while_staged"] == "1"
    shadow = better["shadow"]
    assert (shadow["champion_version"], shadow["challenger_version"]) == (
        "1",
        better["challenger_version"],
    )
    assert shadow["labelled_rows"] == figures["replayed_rows"] == _N // 5
    assert shadow["ci_low"] <= shadow["difference"] <= shadow["ci_high"] < 0.0
    assert better["decision"]["promote"] is True, better["decision"]["reason"]
    assert better["staged_after"] is None  # promoted: no longer a challenger
    assert (
        better["served_after"] == better["champion_alias_after"] == refresh["challenger"]["version"]
    )


def test_a_doubled_challenger_is_caught_in_shadow_and_never_served(demo: dict[str, Any]) -> None:
    """Prices x2: far worse live, refused and withdrawn; the champion keeps serving."""
    figures = demo["figures"]
    champion, doubled = figures["better"]["challenger_version"], figures["doubled"]
    shadow = doubled["shadow"]
    assert (shadow["champion_version"], shadow["challenger_version"]) == (
        champion,
        doubled["challenger_version"],
    )
    assert shadow["labelled_rows"] == figures["replayed_rows"]
    assert shadow["challenger_mape"] > 0.9  # twice a price near the label is ~100 % off
    assert 0.0 < shadow["ci_low"] <= shadow["difference"] <= shadow["ci_high"]
    assert doubled["decision"]["promote"] is False
    assert "not better on live traffic" in doubled["decision"]["reason"]
    assert doubled["served_after"] == doubled["champion_alias_after"] == champion
    assert doubled["staged_after"] is None  # worse with confidence: withdrawn


def test_the_project_is_left_as_the_demo_found_it(demo: dict[str, Any]) -> None:
    """Champion alias, served bundle and the absent challenger pointer are back after the demo."""
    assert demo["after"] == demo["before"]
    assert demo["before"]["staged"] is False
