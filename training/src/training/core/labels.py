"""Joining late labels (sold or listed prices) to the analysed records: every label accounted for.

The HTTP replay sends `X-Request-ID` = the listing id, so a label's `request_id` (or
`listing_id`) is the record's request id. Each label row lands in exactly one outcome:

* `missing_id`: no id;
* `duplicate_id`: its id appears on more than one label row (which price is right is unknown,
  so none of them is used);
* `missing_price`: no price, or one that is not a number;
* `non_positive_price`: a price <= 0 (MAPE divides by it);
* `unknown_id`: no record in the window has the id;
* `ambiguous_id`: several records have the id (one batch request, or a replay sent twice);
* `matched`: joined to its one record.
"""

import msgspec
import numpy as np
import pandas as pd

#: The outcomes of a label row, in the order they are checked.
OUTCOMES = (
    "missing_id",
    "duplicate_id",
    "missing_price",
    "non_positive_price",
    "unknown_id",
    "ambiguous_id",
    "matched",
)
#: Ids named per outcome in the summary (the rest are counted only).
EXAMPLES = 5


class LabelJoin(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What became of a labels file: `rows == sum(outcomes.values())`.

    Attributes:
        file: The labels file.
        id_column: The column joined on (`request_id` or `listing_id`).
        rows: Label rows read.
        outcomes: Rows per outcome (module docstring), every outcome present.
        examples: Up to `EXAMPLES` ids per outcome other than `matched`, where it occurred.
        labelled_records: Records in the window that got a price.
        unlabelled_records: Records in the window without one.
    """

    file: str
    id_column: str
    rows: int
    outcomes: dict[str, int]
    examples: dict[str, list[str]]
    labelled_records: int
    unlabelled_records: int


def join_labels(
    record_ids: pd.Series, labels: pd.DataFrame, id_column: str, file: str
) -> tuple[np.ndarray, LabelJoin]:
    """Each record's label price (NaN without one) and the accounting of every label row.

    Args:
        record_ids: The window's request ids, one per record, in the analysis order.
        labels: The labels file's rows: `id_column` and `price`.
        id_column: The id column of `labels`.
        file: The labels file's name, for the summary.

    Returns:
        Prices aligned with `record_ids` (float64, NaN where unlabelled) and the accounting.
    """
    ids = labels[id_column].astype("string")
    price = pd.to_numeric(labels["price"], errors="coerce").astype(np.float64)
    record_counts = record_ids.astype("string").value_counts()
    outcome = pd.Series("matched", index=labels.index, dtype=object)
    # Checked last to first, so that the earliest outcome in OUTCOMES wins.
    outcome[ids.map(record_counts).fillna(0).to_numpy() > 1] = "ambiguous_id"
    outcome[~ids.isin(record_counts.index).to_numpy(dtype=bool)] = "unknown_id"
    outcome[(price <= 0).to_numpy()] = "non_positive_price"
    outcome[price.isna().to_numpy()] = "missing_price"
    outcome[(ids.notna() & ids.duplicated(keep=False)).to_numpy(dtype=bool)] = "duplicate_id"
    outcome[ids.isna().to_numpy(dtype=bool)] = "missing_id"
    matched = outcome == "matched"
    by_id = pd.Series(price[matched].to_numpy(), index=ids[matched].to_numpy())
    aligned = record_ids.astype("string").map(by_id).to_numpy(dtype=np.float64, na_value=np.nan)
    labelled = int(np.isfinite(aligned).sum())
    # A label without an id is named by its row in the file (0-based); only those rows get a
    # name made (one string per label row cost 0.6 s a million).
    names, missing = ids.astype(object), ids.isna().to_numpy(dtype=bool)
    names[missing] = [f"row {i}" for i in np.flatnonzero(missing)]
    join = LabelJoin(
        file=file,
        id_column=id_column,
        rows=len(labels),
        outcomes={name: int((outcome == name).sum()) for name in OUTCOMES},
        examples={
            name: [str(i) for i in names[outcome == name].drop_duplicates().head(EXAMPLES)]
            for name in OUTCOMES
            if name != "matched" and (outcome == name).any()
        },
        labelled_records=labelled,
        unlabelled_records=len(record_ids) - labelled,
    )
    return aligned, join
