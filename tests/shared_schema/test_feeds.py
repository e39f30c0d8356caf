"""The one feed rule: the graph's own inputs, each typed as the manifest says."""

import math

import numpy as np
import pytest

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, Car
from shared_schema.bundle import ManifestInput, MissingInputError, manifest_inputs
from shared_schema.feeds import build_feeds, feeds_from_cars


def test_feeds_are_columns_of_the_graph_inputs_only() -> None:
    """Strings become object [N, 1], numbers float32 [N, 1] with NaN; only asked fields."""
    car = Car(
        brand="BMW",
        model_name="5ER",
        body_type="седан",
        color="чёрный",
        fuel_type="бензин",
        model_year=2010,
        production_year=2012,
        n_doors=4,
        vehicle_transmission="автомат",
        engine_power=245.0,
        engine_displacement=None,
        mileage=120_000,
        drive_type="задний",
        n_owners="2",
        is_original_techpass=1,
        is_lefthand_drive=1,
    )
    feeds = feeds_from_cars([car, car], manifest_inputs())
    assert list(feeds) == list(FIELD_NAMES)
    for name, array in feeds.items():
        assert array.shape == (2, 1)
        assert array.dtype == (object if name in CATEGORICAL_FIELDS else np.float32)
    assert math.isnan(feeds["engine_displacement"][0, 0])
    assert feeds["brand"][1, 0] == "BMW"
    some = feeds_from_cars([car], manifest_inputs(("brand", "mileage")))
    assert list(some) == ["brand", "mileage"]


def test_each_input_is_typed_as_the_manifest_says() -> None:
    """The dtype comes from the input's manifest type: object for string, float32 for float."""
    inputs = [ManifestInput("mileage", "float"), ManifestInput("n_owners", "string")]
    feeds = build_feeds(inputs, {"mileage": [1.0, None], "n_owners": ["2", "3+"], "extra": [0, 0]})
    assert list(feeds) == ["mileage", "n_owners"]
    assert feeds["mileage"].dtype == np.float32
    assert math.isnan(feeds["mileage"][1, 0])
    assert feeds["n_owners"].dtype == object


def test_a_missing_column_is_named() -> None:
    """Columns lacking one of the graph's inputs are refused, naming the column and its type."""
    inputs = [ManifestInput("brand", "string"), ManifestInput("mileage", "float")]
    with pytest.raises(
        MissingInputError, match="no column 'mileage': the graph takes it as a float"
    ):
        build_feeds(inputs, {"brand": ["BMW"]})
