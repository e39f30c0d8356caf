"""Train / validation / test assignment of listings: pure and reproducible from a seed."""

from typing import Final

import numpy as np
import pandas as pd

SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")


def assign_splits(
    listing_ids: pd.Series, *, seed: int, val_fraction: float, test_fraction: float
) -> pd.DataFrame:
    """Assign each listing to one split at random, reproducibly.

    The listings are sorted by id before drawing, so the assignment depends only on the set of
    ids and the seed, never on the order the rows arrive in. Exact duplicates were collapsed
    into one listing at ingest, so a random split of listings cannot leak a car across splits.

    Args:
        listing_ids: Unique listing ids.
        seed: Seed of the random draw.
        val_fraction: Share of listings in the validation split.
        test_fraction: Share of listings in the test split.

    Returns:
        Columns `listing_id` and `split` (train / val / test), sorted by listing id.

    Raises:
        ValueError: The ids are not unique or the fractions leave no training rows.
    """
    if listing_ids.duplicated().any():
        raise ValueError("listing ids are not unique")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError("val_fraction + test_fraction must be below 1")
    ids = np.sort(listing_ids.astype(str).to_numpy())
    draw = np.random.default_rng(seed).random(len(ids))
    split = np.where(
        draw < test_fraction, "test", np.where(draw < test_fraction + val_fraction, "val", "train")
    )
    return pd.DataFrame({"listing_id": ids, "split": split})
