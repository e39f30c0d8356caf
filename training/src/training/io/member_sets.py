"""Categorical splits re-coded so onnxruntime tests each set with one 64-bit mask.

onnxruntime (1.23 on, read in its `tree_ensemble_attribute.h`) walks a `BRANCH_MEMBER` node of
`ai.onnx.ml.TreeEnsemble` in one of two ways. A set of fewer than 31 members, all in 0..30,
becomes a bitmask (one shift and AND per row); any other set becomes `BRANCH_MEMBER_BIGSET`,
a hash-set lookup per row. `model_name` has about a thousand codes, so most of the champion's
categorical splits took the slow way.

The rewrite gives each such split a small code of its own. For one categorical field, splits
are packed into class columns: a column maps every code of the field to a class, 1..30, or 0 for
a code in none of its splits' sets, such that each set is a union of classes (the classes are
the cells of the sets' Venn diagram). The graph looks the columns up by the field's code (one
`Gather` per field, `training.io.onnx_graph`), and each split tests its column's classes: a
set of at most 30 values in 1..30, the bitmask. `check` proves every rewritten split agrees
with its set on every code the graph's front can produce, so prices cannot change; a split the
rewrite cannot represent keeps its set on the field's code and is named (`Rewrite.fallbacks`).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from training.io.tree_ensemble import (
    MEMBER_MODE,
    member_lists,
    membership_tensor,
    node_attributes,
    tree_of,
    with_attributes,
)

#: onnxruntime's bitmask takes sets of at most 30 values in 0..30, and its mask starts at 1.
MASK_CLASSES: Final = 30


@dataclass(frozen=True)
class ClassTable:
    """One categorical feature's lookup columns (class columns, or `threshold_columns`' ranks)."""

    feature: int
    #: [codes, columns] float64: the class of each code of the feature in each column.
    classes: npt.NDArray[np.float64]
    #: Index of the first column in the forest's input.
    first_column: int


@dataclass
class Rewrite:
    """What `to_class_columns` did: the tables, and the splits left on their codes."""

    tables: list[ClassTable] = field(default_factory=list)
    rewritten: int = 0
    fallbacks: list[str] = field(default_factory=list)


class _Column:
    """One class column being packed: the class of each code, and its splits' sets."""

    def __init__(self, codes: int) -> None:
        self.labels = np.zeros(codes, dtype=np.int64)

    def add(self, members: npt.NDArray[np.int64]) -> bool:
        """Refine the classes by one more set; False (unchanged) past `MASK_CLASSES` classes."""
        # Class 0 is "in no set so far", so `combined` is 0 exactly for codes in no set yet.
        combined = self.labels * 2 + members
        present = np.bincount(combined, minlength=2) > 0
        present[0] = False
        if int(np.count_nonzero(present)) > MASK_CLASSES:
            return False
        self.labels = np.cumsum(present)[combined] * (combined > 0)
        return True


def _fits_mask(members: list[float]) -> bool:
    return len(members) <= MASK_CLASSES and all(
        value == int(value) and 1 <= value <= MASK_CLASSES for value in members
    )


def _large_sets(
    members: Mapping[int, list[float]],
    features: list[int],
    trees: Mapping[int, int],
    *,
    codes: Mapping[int, int],
    names: list[str],
    rewrite: Rewrite,
) -> dict[int, list[int]]:
    """The nodes to re-code, per feature; the sets that cannot be are named in `rewrite`."""
    per_feature: dict[int, list[int]] = {}
    for node, values in members.items():
        feature = features[node]
        split = f"tree {trees.get(node, '?')} node {node} ({names[feature]})"
        if _fits_mask(values):
            continue
        if feature not in codes:
            rewrite.fallbacks.append(f"{split}: not a categorical feature")
            continue
        outside = sorted(v for v in values if v != int(v) or not 0 <= v < codes[feature])
        if outside:
            rewrite.fallbacks.append(
                f"{split}: members {outside[:5]} outside the front's codes 0..{codes[feature] - 1}"
            )
        else:
            per_feature.setdefault(feature, []).append(node)
    return per_feature


def to_class_columns(
    forest: onnx.NodeProto, codes: Mapping[int, int], n_features: int, names: list[str]
) -> tuple[onnx.NodeProto, Rewrite]:
    """The forest with its large categorical sets tested on class columns.

    Args:
        forest: An `ai.onnx.ml.TreeEnsemble` node (input [N, n_features]).
        codes: Per categorical feature index, how many codes its front produces (0..codes-1).
        n_features: Columns of the forest's input before the class columns.
        names: Feature names, for naming splits.

    Returns:
        The rewritten node (its input gets the class columns after the `n_features` columns,
        table by table) and what was rewritten.

    Raises:
        ValueError: A node mode TreeEnsemble does not define (named with its tree and node).
    """
    attributes = node_attributes(forest)
    modes = numpy_helper.to_array(attributes["nodes_modes"])
    trees = tree_of(attributes)
    for node, mode in enumerate(modes.tolist()):
        if mode > MEMBER_MODE and node in trees:
            raise ValueError(f"tree {trees[node]} node {node}: unknown node mode {mode}")
    members = member_lists(attributes)
    features = list(attributes["nodes_featureids"])
    rewrite = Rewrite()
    per_feature = _large_sets(members, features, trees, codes=codes, names=names, rewrite=rewrite)
    new_members = dict(members)
    column_count = n_features
    for feature, nodes in sorted(per_feature.items()):
        columns: list[_Column] = []
        placed: dict[int, int] = {}
        for node in nodes:
            mask = np.zeros(codes[feature], dtype=np.int64)
            mask[np.asarray(members[node], dtype=np.int64)] = 1
            for index, column in enumerate(columns):
                if column.add(mask):
                    placed[node] = index
                    break
            else:
                columns.append(_Column(codes[feature]))
                columns[-1].add(mask)
                placed[node] = len(columns) - 1
        table = np.stack([column.labels for column in columns], axis=1).astype(np.float64)
        for node, index in placed.items():
            classes = table[np.asarray(members[node], dtype=np.int64), index]
            new_members[node] = sorted(set(classes.tolist()))
            features[node] = column_count + index
        rewrite.tables.append(ClassTable(feature, table, column_count))
        rewrite.rewritten += len(placed)
        column_count += table.shape[1]
    new = with_attributes(
        forest,
        nodes_featureids=features,
        membership_values=membership_tensor(new_members, attributes["membership_values"]),
    )
    check(forest, new, rewrite, codes)
    return new, rewrite


def check(
    old: onnx.NodeProto, new: onnx.NodeProto, rewrite: Rewrite, codes: Mapping[int, int]
) -> None:
    """Every rewritten split sends every code the same way as its original set.

    Raises:
        ValueError: A split that disagrees, named with its tree, node and the first code.
    """
    old_attributes, new_attributes = node_attributes(old), node_attributes(new)
    before, after = member_lists(old_attributes), member_lists(new_attributes)
    trees = tree_of(old_attributes)
    columns = {
        t.first_column + i: (t, i) for t in rewrite.tables for i in range(t.classes.shape[1])
    }
    for node, feature in enumerate(new_attributes["nodes_featureids"]):
        if feature not in columns:
            continue
        table, index = columns[feature]
        every_code = np.arange(codes[table.feature])
        original = np.isin(every_code, before[node])
        recoded = np.isin(table.classes[:, index], after[node])
        if not np.array_equal(original, recoded):
            code = int(np.flatnonzero(original != recoded)[0])
            raise ValueError(
                f"tree {trees[node]} node {node}: class column {index} sends code {code} "
                f"{'into' if recoded[code] else 'out of'} its set, the booster does not"
            )
