"""`car-train refresh-level` on synthetic markets: the same forest at a new level, gated.

The 2022 rows are the 2020 cars (two brands) at 1.5 times the price: a pure level shift. The
refresh must find it from the older 2022 rows, price the newest ones far better than the 2020
champion, leave the 2020 test split's prices at 2020's level exactly as they were, and refuse a
window it cannot trust, naming why, without publishing anything.
"""

import json
import math
from typing import Any

import onnx
import pandas as pd
import pytest

from shared_schema.bundle import read_verified
from shared_schema.serving_folder import resolve
from training.cli import main
from training.config import Params
from training.core.retrain import ORDER, slice_key
from training.io import onnx_graph, registry
from training.io.mlflow_service import MlflowService
from training.jobs.refresh_level import PARENT_TAG

from ..raw_markets import LEVEL_SHIFT, level_shifted_markets
from .conftest import (
    LEVEL_SHIFT_PROJECT,
    labels_with_2022_prices_times_1000,
    newest_day_before_holdout,
    params_variant,
    published_project,
)

_N = 400


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, fast_training: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Both markets ingested, the 2020 pipeline run to a published champion (version 1)."""
    return published_project(
        tmp_path_factory,
        "refresh",
        level_shifted_markets(_N),
        {**fast_training, **LEVEL_SHIFT_PROJECT},
    )


def _champion(params: Params) -> Any:
    service = MlflowService.from_params(params.registry)
    return registry.require_alias(service, params.registry.model_name, "champion")


def _served(params: Params) -> Any:
    return read_verified(resolve(params.paths.serving_bundle).directory)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"market": {"min_window_rows": 10_000}},
            "labelled rows; a market level needs 10000",
        ),
        (
            {"market": {"min_window_brands": 3}},
            "of 2 brand(s) (MITSUBISHI, TOYOTA); a market level needs 3",
        ),
        ({"paths": "x1000"}, "the sanity bound is x2 either way"),
    ],
)
def test_a_window_it_cannot_trust_is_refused_and_nothing_published(
    project: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    sections: dict[str, Any],
    message: str,
) -> None:
    """Too few rows, too few brands, prices x1000: refused naming why; champion and serving kept."""
    if sections.get("paths"):
        sections = {"paths": labels_with_2022_prices_times_1000(project)}
    path, params = params_variant(project, "bad", **sections)
    champion, served = _champion(params).version, _served(params).manifest.sha256
    assert main(["--params", path, "refresh-level"]) == 1
    err = capsys.readouterr().err
    assert "level refresh refused, nothing published" in err
    assert message in err
    assert not params.paths.refresh_report.exists()
    assert _champion(params).version == champion
    assert _served(params).manifest.sha256 == served


@pytest.fixture(scope="module")
def refreshed(project: dict[str, Any]) -> Params:
    """One refresh of the 2020 champion (version 1) at the repository's gate."""
    path, params = params_variant(project, "refresh")
    assert main(["--params", path, "refresh-level"]) == 0
    return params


@pytest.mark.slow
def test_the_refresh_finds_the_level_and_is_promoted_through_the_gate(refreshed: Params) -> None:
    """Level x1.5 found; far better on the newest rows; 2020 priced exactly as before."""
    record = json.loads(refreshed.paths.refresh_report.read_text("utf-8"))
    assert record["promote"] is True, record["reason"]
    assert math.exp(record["level"] - record["parent_level"]) == pytest.approx(
        LEVEL_SHIFT, rel=0.05
    )
    # 1.5x too low costs the champion a third of every price: the refresh wins that back.
    assert record["challenger"]["holdout_mape"] < record["champion"]["holdout_mape"] - 0.1
    # The same forest at 2020's level: the 2020 test split priced as the parent priced it.
    assert record["challenger"]["test_2020_mape"] == pytest.approx(
        record["champion"]["test_2020_mape"], rel=1e-5
    )
    assert record["parent_version"] == "1"
    assert record["market_date"] == newest_day_before_holdout(refreshed, _N // 5)
    assert str(_champion(refreshed).version) == record["champion_version_after"] == "2"


@pytest.mark.slow
def test_the_refreshed_bundle_is_the_parents_graph_with_one_new_constant(
    refreshed: Params,
) -> None:
    """Served: the parent's graph but for `market_level`, the index extended, lineage kept."""
    service = MlflowService.from_params(refreshed.registry)
    name = refreshed.registry.model_name
    parent_bytes, parent = registry.fetch_bundle(
        service, registry.require_version(service, name, "1")
    )
    served = _served(refreshed)
    market = served.manifest.market
    assert market is not None
    assert parent.market is not None
    assert market.parent_version == "1"
    assert market.market_date == newest_day_before_holdout(refreshed, _N // 5)
    assert market.periods == [*parent.market.periods, market.market_date]
    assert _champion(refreshed).tags[PARENT_TAG] == "1"
    # Measured on the holdout it was checked on, not the parent's figures on its own rows.
    record = json.loads(refreshed.paths.refresh_report.read_text("utf-8"))
    manifest = served.manifest
    assert manifest.parity_rows == record["holdout_rows"]
    assert manifest.metrics["mape"] == pytest.approx(record["challenger"]["holdout_mape"])
    assert manifest.parity_max_rel_diff != parent.parity_max_rel_diff
    assert manifest.interval is not None
    assert parent.interval is not None
    assert manifest.interval.coverage != parent.interval.coverage
    # (The relative width does not move with the level, and the 2022 cars are the 2020 cars
    # here: it is the parent's to the last digit, so it cannot tell which rows it came from.)
    old, new = (onnx.load_from_string(b) for b in (parent_bytes, served.model_bytes))
    assert old.graph.node == new.graph.node
    changed = [
        a.name
        for a, b in zip(old.graph.initializer, new.graph.initializer, strict=True)
        if a.SerializeToString() != b.SerializeToString()
    ]
    assert changed == [onnx_graph.MARKET_LEVEL]


@pytest.mark.slow
def test_a_window_the_champion_trained_on_is_refused(
    project: dict[str, Any], refreshed: Params, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refreshing the refresh on the same rows, or a champion tagged into the holdout: refused."""
    path, _ = params_variant(project, "again")
    champion = _champion(refreshed)
    served = _served(refreshed).manifest.sha256
    assert main(["--params", path, "refresh-level"]) == 1
    err = capsys.readouterr().err
    assert "0 of the window's" in err
    assert f"champion version {champion.version} trained on" in err
    service = MlflowService.from_params(refreshed.registry)
    name, through = refreshed.registry.model_name, champion.tags[registry.TRAINED_THROUGH_TAG]
    labels = pd.read_parquet(refreshed.paths.labels)
    new = labels.loc[labels["source"] == "autoru_2022_msk_spb"].sort_values(list(ORDER))
    try:
        service.client.set_model_version_tag(
            name, champion.version, registry.TRAINED_THROUGH_TAG, slice_key(new.iloc[-1])
        )
        assert main(["--params", path, "refresh-level"]) == 1
        assert "which reach into the holdout" in capsys.readouterr().err
    finally:
        service.client.set_model_version_tag(
            name, champion.version, registry.TRAINED_THROUGH_TAG, through
        )
    assert _champion(refreshed).version == champion.version
    assert _served(refreshed).manifest.sha256 == served
