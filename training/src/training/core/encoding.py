"""Raw car fields → the booster's feature matrix: the preprocessing the ONNX graph reproduces.

Every transformation here has an ONNX twin in `training.io.onnx_graph`; the parity check at
export holds the two together.

* Categorical fields become codes: `1 + rank` of a category in the training vocabulary, and
  `UNKNOWN_CODE` (0) for anything else — rare categories in training and unseen ones at serving
  alike. Training rows therefore teach the booster what an unknown category is worth, so an
  unseen model name gets the price of "a rare model" rather than an arbitrary branch.
* Numeric fields are rounded to float32 first, because the graph receives float32: training on
  the same rounded values keeps the booster's split thresholds away from serving values.
* No derived features: the serving request has no listing date, so `age_years` and
  `km_per_year` are not computable in the graph; for trees, age would duplicate
  `production_year` anyway, and `km_per_year` would fight the monotone constraints (it rises
  with production year at fixed mileage).
"""

import dataclasses
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES

UNKNOWN_CODE: Final = 0

#: How known categories are ranked into codes: by how often they occur in the training rows,
#: or by their training rows' mean log price (cheapest first). The price order lets a booster
#: that splits the codes as ordered numbers cut "cheaper than X" in one threshold, a global
#: version of the per-split ordering LightGBM's categorical splits make.
CategoryOrder = Literal["frequency", "price"]

#: Monotone constraints per feature: price falls with mileage, rises with production year.
MONOTONE: Final[dict[str, int]] = {"mileage": -1, "production_year": 1}


@dataclass(frozen=True)
class Vocabulary:
    """Known categories per categorical field; a category's code is its index + 1.

    `brand_models` does not enter the encoding: it is the known model names listed with each
    known brand, most listed first, which the bundle's manifest carries for the pricing page.
    """

    categories: dict[str, tuple[str, ...]]
    brand_models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, list[str]]:
        """The vocabulary as plain lists (the manifest's `categories`)."""
        return {field: list(values) for field, values in self.categories.items()}

    def brand_models_json(self) -> dict[str, list[str]]:
        """`brand_models` as plain lists (the manifest's `brand_models`)."""
        return {brand: list(models) for brand, models in self.brand_models.items()}

    @classmethod
    def from_json(
        cls, raw: dict[str, list[str]], brand_models: dict[str, list[str]] | None = None
    ) -> "Vocabulary":
        """Rebuild a vocabulary written by `to_json` (and `brand_models_json`)."""
        return cls(
            {field: tuple(raw[field]) for field in CATEGORICAL_FIELDS},
            {brand: tuple(models) for brand, models in (brand_models or {}).items()},
        )


def fit_vocabulary(
    frame: pd.DataFrame, min_count: int, order: CategoryOrder = "frequency"
) -> Vocabulary:
    """Categories seen at least `min_count` times, ranked by `order` (ties by value).

    With `order="price"` the codes rise with the mean log price of the category's rows in
    `frame` (pass training rows only: the order is learned from their prices). The unknown
    code stays 0, below the cheapest category, whatever its rows cost: the graph maps every
    unlisted value to one fixed default, so rare and unseen categories cannot take a place in
    the order; a numeric split isolates them only together with the cheapest categories.

    Args:
        frame: Training rows with every categorical field (and `price` for `order="price"`).
        min_count: Rarer categories are left out and share the unknown code.
        order: "frequency" (most frequent first) or "price" (cheapest mean log price first).

    Raises:
        ValueError: An unknown order, or `order="price"` without a positive `price` column.
    """
    if order not in ("frequency", "price"):
        raise ValueError(f"category order must be 'frequency' or 'price', got {order!r}")
    log_price = _log_price(frame) if order == "price" else None
    categories: dict[str, tuple[str, ...]] = {}
    for field in CATEGORICAL_FIELDS:
        present = frame[field].notna().to_numpy()
        values = frame[field][present].astype(str).reset_index(drop=True)
        counts = values.value_counts()
        counts = counts[counts >= min_count]
        if log_price is None:
            keys = -counts.astype(np.float64)
        else:
            keys = pd.Series(log_price[present]).groupby(values).mean()
        ordered = sorted(counts.index, key=lambda value: (float(keys[value]), value))
        categories[field] = tuple(str(value) for value in ordered)
    return Vocabulary(categories, _brand_models(frame, categories))


def _brand_models(
    frame: pd.DataFrame, categories: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """Each known brand's known model names, most listed first (ties by name)."""
    pairs = frame[["brand", "model_name"]].dropna().astype(str)
    known = pairs["brand"].isin(categories["brand"]) & pairs["model_name"].isin(
        categories["model_name"]
    )
    counts = pairs[known].groupby(["brand", "model_name"]).size()
    models: dict[str, list[tuple[int, str]]] = {brand: [] for brand in categories["brand"]}
    for brand, model_name, count in zip(
        counts.index.get_level_values("brand"),
        counts.index.get_level_values("model_name"),
        counts.to_numpy(),
        strict=True,
    ):
        models[str(brand)].append((-int(count), str(model_name)))
    return {brand: tuple(name for _, name in sorted(rows)) for brand, rows in models.items()}


def _log_price(frame: pd.DataFrame) -> np.ndarray:
    if "price" not in frame.columns:
        raise ValueError("category order 'price' needs the rows' `price` column")
    price = pd.to_numeric(frame["price"], errors="coerce").to_numpy(dtype=np.float64)
    if not bool((price > 0).all()):
        raise ValueError("category order 'price' needs a positive price on every row")
    return np.log(price)


def feature_matrix(frame: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """The booster's input: one float64 column per schema field, in schema order.

    Args:
        frame: Rows with every schema field (extra columns are ignored).
        vocabulary: Category codes from `fit_vocabulary`.

    Returns:
        Codes for categorical fields, float32-rounded values for numeric fields (NaN kept).
    """
    columns: dict[str, np.ndarray] = {}
    for field in FIELD_NAMES:
        if field in CATEGORICAL_FIELDS:
            codes = {value: index + 1 for index, value in enumerate(vocabulary.categories[field])}
            mapped = frame[field].astype(object).map(codes)
            columns[field] = mapped.fillna(UNKNOWN_CODE).to_numpy(dtype=np.float64)
        else:
            values = pd.to_numeric(frame[field], errors="coerce").to_numpy(dtype=np.float64)
            columns[field] = values.astype(np.float32).astype(np.float64)
    return pd.DataFrame(columns, index=frame.index)


def monotone_constraints() -> list[int]:
    """LightGBM's `monotone_constraints`, one entry per feature column."""
    return [MONOTONE.get(field, 0) for field in FIELD_NAMES]


def categorical_features() -> list[str]:
    """Feature columns LightGBM splits as categories."""
    return list(CATEGORICAL_FIELDS)
