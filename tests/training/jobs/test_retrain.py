"""`car-train retrain` on synthetic markets: holdout, market index, gate, registry and serving.

The 2022 rows describe the same cars as the 2020 rows at 2.5 times the price (a price shock no
field reveals): a level. The challenger learns it as its index (2022's level 2.5 times 2020's),
so it is far better on the newest 2022 slice and, scored at 2020's level, not worse on 2020:
the gate promotes it at the repository's tolerance. (Before the market clock the same
challenger was catastrophically worse on 2020 and refused.)
"""

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shared_schema.serving_folder import resolve
from training.cli import main
from training.config import Params
from training.core.retrain import ORDER, slice_key
from training.io import registry
from training.io.mlflow_service import MlflowService

from ..raw_markets import row_2020, row_2022
from .conftest import (
    labels_with_2022_prices_times_1000,
    newest_day_before_holdout,
    params_variant,
    published_project,
)

_N = 400
_DAYS = ("2022-03-27", "2022-03-28", "2022-04-01", "2022-04-04")

#: This project's settings besides the fast training ones (the rest is params.yaml).
_PROJECT: dict[str, dict[str, Any]] = {
    "split": {"val_fraction": 0.3},
    "retrain": {"min_holdout_rows": 50, "val_fraction": 0.3},
    # The 2.5x shock in one step is past the repository's x2 sanity bound (held to below).
    "market": {"max_level_ratio": 3.0},
}


def _price(i: int) -> float:
    return 2_000_000.0 - 4_000.0 * i


def _markets() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Identical cars (one model, mileage varies) in 2020 and, 2.5 times dearer, in 2022."""
    old = pd.DataFrame(
        [row_2020(model_year=2014, mileage=5_000 * (i + 1), price=_price(i)) for i in range(_N)]
    )
    super_gen = json.dumps({"mark": "TOYOTA", "model": "CAMRY", "year": 2014})
    new = pd.DataFrame(
        [
            row_2022(
                sell_id=10_000 + i,
                year=2014.0,
                kmage=5_000.0 * ((i * 7) % _N + 1),
                price=2.5 * _price((i * 7) % _N),
                super_gen=super_gen,
                color="серый",
                engineDisplacement=2.5,
                enginePower=181.0,
                vehicleTransmission="автоматическая",
                owner="2 владельца",
                parse_date=_DAYS[i * len(_DAYS) // _N],
            )
            for i in range(_N)
        ]
    ).astype({"sell_id": "Int64"})
    return old, new


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, fast_training: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Both markets ingested, the 2020 pipeline run to a published champion (version 1)."""
    return published_project(tmp_path_factory, "retrain", _markets(), {**fast_training, **_PROJECT})


def _retrain(path: str, monkeypatch: pytest.MonkeyPatch) -> int:
    return main(["--params", path, "retrain"])


@pytest.fixture(scope="module")
def retrained(project: dict[str, Any]) -> Params:
    """One retrain at the repository's tolerance, with version 1 (2020 only) as champion."""
    path, params = params_variant(project, "strict")
    with pytest.MonkeyPatch.context() as patch:
        assert _retrain(path, patch) == 0
    return params


def _champion(params: Params) -> str:
    service = MlflowService.from_params(params.registry)
    return str(registry.require_alias(service, params.registry.model_name, "champion").version)


def _served_manifest(params: Params) -> str:
    """The manifest of the bundle the serving folder's `current` names."""
    return (resolve(params.paths.serving_bundle).directory / "manifest.json").read_text("utf-8")


def _served_version(params: Params) -> str:
    manifest = json.loads(_served_manifest(params))
    return str(manifest["model_version"])


@pytest.mark.slow
def test_learns_the_level_and_is_not_worse_on_2020_at_2020s_level(retrained: Params) -> None:
    """Index 2.5x from 2020 to 2022; better on the newest slice, 2020 within the tolerance."""
    params = retrained
    record = json.loads(params.paths.retrain_report.read_text("utf-8"))
    assert record["promote"] is True, record["reason"]
    assert record["reason"].startswith("better on the new market, not much worse on 2020")
    assert record["challenger"]["holdout_mape"] < record["champion"]["holdout_mape"] / 3
    ceiling = record["champion"]["test_2020_mape"] * (1 + record["old_market_tolerance"])
    assert record["challenger"]["test_2020_mape"] <= ceiling
    # At the served (2022) level the same challenger would price 2020 cars 2.5x too high.
    assert record["challenger"]["test_2020_mape"] < 0.5
    assert record["test_2020_period"] == "2020-09-09"
    assert (record["champion_version_before"], record["champion_version_after"]) == ("1", "2")
    market = json.loads(_served_manifest(params))["market"]
    levels = dict(zip(market["periods"], market["levels"], strict=True))
    assert {"2020-09-09", *_DAYS[:-1]} <= set(levels) <= {"2020-09-09", *_DAYS}
    for day in set(levels) - {"2020-09-09"}:
        assert math.exp(levels[day] - levels["2020-09-09"]) == pytest.approx(2.5, rel=0.05)
    assert (
        record["market_date"] == market["market_date"] == newest_day_before_holdout(params, _N // 5)
    )
    service = MlflowService.from_params(params.registry)
    challenger = registry.require_version(
        service, params.registry.model_name, record["challenger"]["version"]
    )
    assert challenger.tags["promotion"] == "promoted"
    assert challenger.tags["promotion_reason"] == record["reason"]
    assert set(challenger.tags) == {
        "sha256",
        "holdout_mape",
        "training_data_hash",
        "schema_version",
        registry.TRAINED_THROUGH_TAG,
        "promotion",
        "promotion_reason",
    }
    gate = service.client.get_run(challenger.run_id).data.metrics
    assert gate["gate_challenger_holdout_mape"] == record["challenger"]["holdout_mape"]
    assert gate["gate_champion_test_2020_mape"] == record["champion"]["test_2020_mape"]


@pytest.mark.slow
def test_the_holdout_is_the_newest_2022_slice_and_never_trained_on(retrained: Params) -> None:
    """The holdout: the newest fifth of 2022, never trained on; the reference: older rows."""
    params = retrained
    holdout = pd.read_parquet(params.paths.retrain_holdout)
    labels = pd.read_parquet(params.paths.labels)
    new = labels.loc[labels["source"] == "autoru_2022_msk_spb"].sort_values(list(ORDER))
    assert len(holdout) == _N // 5
    assert set(holdout["listing_id"]) == set(new["listing_id"].iloc[-(_N // 5) :])
    assert holdout["price"].notna().all()
    assert "mileage" in holdout.columns
    record = json.loads(params.paths.retrain_report.read_text("utf-8"))
    assert record["holdout_rows"] == _N // 5
    used = ("train_rows", "val_rows", "holdout_rows", "test_2020_rows")
    assert sum(record[key] for key in used) == 2 * _N
    assert record["holdout_from"] == slice_key(new.iloc[-(_N // 5)])
    assert record["holdout_to"] == slice_key(new.iloc[-1])
    trained = json.loads((params.paths.retrain_pipeline / "pipeline.json").read_text("utf-8"))
    assert trained["dataset"]["test"]["rows"] == _N // 5
    reference = pd.read_parquet(params.paths.retrain_reference)  # the drift job's reference
    assert len(reference) == record["calibration_rows"] > 0
    assert set(reference["listing_id"]) <= set(new["listing_id"].iloc[: -(_N // 5)])
    assert reference["price"].notna().all()


@pytest.mark.slow
def test_promotes_and_publishes_a_challenger_within_tolerance(retrained: Params) -> None:
    """Within the 2020 tolerance the challenger becomes champion and is served."""
    params = retrained
    record = json.loads(params.paths.retrain_report.read_text("utf-8"))
    assert record["promote"] is True, record["reason"]
    version = record["challenger"]["version"]
    assert record["champion_version_after"] == version != record["champion_version_before"]
    assert _champion(params) == _served_version(params) == version
    manifest = json.loads(_served_manifest(params))
    assert manifest["registry_alias"] == "champion"


@pytest.mark.slow
def test_refuses_a_holdout_the_champion_trained_on(
    project: dict[str, Any],
    retrained: Params,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A retrained champion must not have seen the holdout: a larger one is an error."""
    champion = _champion(retrained)
    path, params = params_variant(project, "wider", retrain={"holdout_fraction": 0.5})
    assert _retrain(path, monkeypatch) == 1
    err = capsys.readouterr().err
    assert f"champion version {champion} trained on new-market rows up to" in err
    assert "reach into the holdout" in err
    assert not params.paths.retrain_report.exists()
    assert _champion(params) == champion


def _without_2022(project: dict[str, Any]) -> dict[str, Any]:
    """A labels table with the 2022 rows removed, in place of the real one."""
    source = Path(project["raw"]["paths"]["labels"])
    labels = pd.read_parquet(source)
    target = source.with_name("labels-2020-only.parquet")
    labels.loc[labels["source"] != "autoru_2022_msk_spb"].to_parquet(target)
    return {"labels": str(target)}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"paths": "2020 only"}, "no labelled listings of source 'autoru_2022_msk_spb'"),
        ({"retrain": {"min_holdout_rows": 1_000}}, "the gate needs retrain.min_holdout_rows 1000"),
        ({"retrain": {"val_fraction": 0.05}}, "the price interval needs 50"),
    ],
)
def test_bad_inputs_fail_naming_the_problem(
    project: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sections: dict[str, Any],
    message: str,
) -> None:
    """No new labelled rows, too few for a holdout or for validation: a clear error, no outputs."""
    if sections.get("paths"):
        sections = {"paths": _without_2022(project)}
    path, params = params_variant(project, "bad", **sections)
    assert _retrain(path, monkeypatch) == 1
    assert message in capsys.readouterr().err
    assert not params.paths.retrain_report.exists()
    assert not params.paths.retrain_holdout.exists()


@pytest.mark.slow
def test_a_level_past_the_sanity_bound_is_refused_before_registering(
    project: dict[str, Any],
    retrained: Params,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """2022 prices x1000 (another unit): the challenger's level is refused naming both levels."""
    x1000 = labels_with_2022_prices_times_1000(project)
    champion = _champion(retrained)
    service = MlflowService.from_params(retrained.registry)
    name = retrained.registry.model_name
    versions = len(service.client.search_model_versions(f"name='{name}'"))
    path, params = params_variant(project, "x1000", paths=x1000)
    assert _retrain(path, monkeypatch) == 1
    err = capsys.readouterr().err
    assert "retrain refused, nothing registered: the challenger serves level" in err
    assert "the sanity bound is x3 either way" in err
    assert not params.paths.retrain_report.exists()
    assert _champion(params) == champion
    assert len(service.client.search_model_versions(f"name='{name}'")) == versions
