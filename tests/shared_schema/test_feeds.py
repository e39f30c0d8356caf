"""The one feed rule: the graph's own inputs, each typed as the manifest says."""

import math

import numpy as np
import pytest

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, Car
from shared_schema.bundle import ManifestInput, MissingInputError, grouped_inputs, manifest_inputs
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


def test_a_grouped_input_is_its_fields_side_by_side() -> None:
    """[N, fields] in the listed order: strings as objects, numbers float32 with NaN."""
    inputs = [
        ManifestInput("categorical", "string", ("color", "brand")),
        ManifestInput("numeric", "float", ("mileage", "engine_power")),
    ]
    columns = {"brand": ["BMW", "AUDI"], "color": ["white", "red"]}
    columns |= {"mileage": [1.0, None], "engine_power": [150, 90]}
    feeds = build_feeds(inputs, columns)
    assert feeds["categorical"].tolist() == [["white", "BMW"], ["red", "AUDI"]]
    assert feeds["categorical"].dtype == object
    assert feeds["numeric"].dtype == np.float32
    assert feeds["numeric"].shape == (2, 2)
    assert feeds["numeric"][0].tolist() == [1.0, 150.0]
    assert math.isnan(feeds["numeric"][1, 0])
    assert feeds["numeric"].flags["C_CONTIGUOUS"]


def test_a_missing_column_of_a_grouped_input_is_named() -> None:
    """The column and the grouped input it belongs to are both named."""
    with pytest.raises(MissingInputError, match=r"no column 'color': .* of input 'categorical'"):
        build_feeds(grouped_inputs(), {name: ["x"] for name in FIELD_NAMES if name != "color"})


def test_cars_feed_grouped_inputs() -> None:
    """The server's path fills each grouped input from the decoded cars, one row per car."""
    car = Car(**{name: "x" if name in CATEGORICAL_FIELDS else 1.0 for name in FIELD_NAMES})
    feeds = feeds_from_cars([car, car, car], grouped_inputs())
    assert feeds["categorical"].shape == (3, len(CATEGORICAL_FIELDS))
    assert feeds["numeric"].shape == (3, len(FIELD_NAMES) - len(CATEGORICAL_FIELDS))
