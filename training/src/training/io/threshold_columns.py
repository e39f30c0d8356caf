"""Categorical splits re-coded as thresholds, so that every node of the forest is a BRANCH_LEQ.

onnxruntime walks a `TreeEnsemble` whose nodes all share one mode in a tighter loop than one
that mixes modes (a switch per node). The champion's forest mixed `BRANCH_LEQ` on numbers with
`BRANCH_EQ` and `BRANCH_MEMBER` on categories. Walked alone at 10,000 rows, one thread, it took
17.9 µs per row with its sets on class columns (`training.io.member_sets`), and 14.6 µs with
every split a threshold (issue 21's closing note).

For one categorical field, the splits are packed into threshold columns. A column gives every
code of the field a rank, such that the sets placed on it are nested (S0 ⊆ S1 ⊆ …): a code is
in S_i exactly when its rank is at most i, so the split becomes `column ≤ i + 0.5`. A split may
be placed as its set or as the set's complement, with its true and false children swapped. Only
the codes that can reach a split matter: a code an ancestor split on the same field already
sent the other way never gets there, so the split may take it either way. That lets most sets
share columns (the champion: 10,456 categorical splits on about 800 columns). The graph looks
the columns up by the field's code (one `Gather` per field, `training.io.graph_front`).

`check` proves each rewritten split sends every code that can reach it the way the original
split does, so prices cannot change. A set with a member the graph's front never produces
(not an integer code of the field) keeps its node and is named (`Rewrite.fallbacks`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from training.io.member_sets import ClassTable, Rewrite
from training.io.tree_ensemble import (
    COMPARISONS,
    MEMBER_MODE,
    member_lists,
    membership_tensor,
    node_attributes,
    tree_of,
    with_attributes,
)

_LEQ = 0
_Codes = npt.NDArray[np.bool_]


@dataclass
class _Split:
    """One categorical split: its node, its set over the field's codes, the codes reaching it."""

    node: int
    members: _Codes
    reaching: _Codes


def _goes_true(mode: int, split: float, members: list[float] | None, codes: int) -> _Codes | None:
    """Which codes 0..codes-1 a node sends to its true branch; None if a member is not a code."""
    every = np.arange(codes, dtype=np.float64)
    if mode == MEMBER_MODE:
        assert members is not None
        if any(value != int(value) or not 0 <= value < codes for value in members):
            return None
        return np.isin(every, members)
    return np.asarray(COMPARISONS[mode](every, split), dtype=bool)


def _splits(
    attributes: Mapping[str, Any], codes: Mapping[int, int], names: list[str], rewrite: Rewrite
) -> dict[int, list[_Split]]:
    """Each categorical feature's splits, with the codes that reach each (walking every tree).

    Raises:
        ValueError: A node mode TreeEnsemble does not define (named with its tree and node).
    """
    modes = numpy_helper.to_array(attributes["nodes_modes"]).tolist()
    thresholds = numpy_helper.to_array(attributes["nodes_splits"]).tolist()
    features: list[int] = list(attributes["nodes_featureids"])
    sets = member_lists(attributes)
    found: dict[int, list[_Split]] = {}
    for tree, root in enumerate(attributes["tree_roots"]):
        stack = [(root, {feature: np.ones(count, dtype=bool) for feature, count in codes.items()})]
        while stack:
            node, reaching = stack.pop()
            mode, feature = modes[node], features[node]
            if mode != MEMBER_MODE and mode not in COMPARISONS:
                raise ValueError(f"tree {tree} node {node}: unknown node mode {mode}")
            members = None
            if feature in codes:
                members = _goes_true(mode, thresholds[node], sets.get(node), codes[feature])
                if members is None:
                    rewrite.fallbacks.append(
                        f"tree {tree} node {node} ({names[feature]}): a member outside the "
                        f"front's codes 0..{codes[feature] - 1}"
                    )
                else:
                    found.setdefault(feature, []).append(_Split(node, members, reaching[feature]))
            for side in ("true", "false"):
                if attributes[f"nodes_{side}leafs"][node]:
                    continue
                child = dict(reaching)
                if members is not None:
                    child[feature] = reaching[feature] & (members if side == "true" else ~members)
                stack.append((attributes[f"nodes_{side}nodeids"][node], child))
    return found


def _bits(codes: _Codes) -> int:
    """A set of codes as an integer, bit i for code i (set operations on ints are fast)."""
    return int.from_bytes(np.packbits(codes, bitorder="little").tobytes(), "little")


def _codes(bits: int, count: int) -> _Codes:
    """The codes of an integer bit set (`_bits` reversed)."""
    packed = np.frombuffer(bits.to_bytes(-(-count // 8), "little"), dtype=np.uint8)
    return np.unpackbits(packed, count=count, bitorder="little").astype(bool)


def _place(chains: list[list[tuple[int, int]]], split: _Split) -> bool:
    """Put the split (its set, else the complement) into a chain; True if it took the complement.

    A chain is a column's nested sets (as `_bits`), smallest first. The split fits between
    S_{i-1} and S_i when S_{i-1} holds no reaching code outside its set and S_i every reaching
    code in it; the set inserted is then S_{i-1} plus those reaching codes.
    """
    reaching, members = _bits(split.reaching), _bits(split.members)
    for chain in chains:
        for complement in (False, True):
            inside = reaching & (reaching ^ members if complement else members)
            outside = reaching & ~inside
            for position in range(len(chain) + 1):
                below = chain[position - 1][0] if position else 0
                if below & outside:
                    continue
                if position < len(chain) and inside & ~chain[position][0]:
                    continue
                chain.insert(position, (below | inside, split.node))
                return complement
    chains.append([(reaching & members, split.node)])
    return False


def to_threshold_columns(
    forest: onnx.NodeProto, codes: Mapping[int, int], n_features: int, names: list[str]
) -> tuple[onnx.NodeProto, Rewrite]:
    """The forest with its categorical splits as `BRANCH_LEQ` on threshold columns.

    Args:
        forest: An `ai.onnx.ml.TreeEnsemble` node (input [N, n_features]).
        codes: Per categorical feature index, how many codes its front produces (0..codes-1).
        n_features: Columns of the forest's input before the threshold columns.
        names: Feature names, for naming splits.

    Returns:
        The rewritten node (its input gets the threshold columns after the `n_features`
        columns, table by table; a table's values are each code's rank) and what was rewritten.

    Raises:
        ValueError: A node mode TreeEnsemble does not define (named with its tree and node).
    """
    found_in = node_attributes(forest)
    rewrite = Rewrite()
    per_feature = _splits(found_in, codes, names, rewrite)
    features: list[int] = list(found_in["nodes_featureids"])
    modes = numpy_helper.to_array(found_in["nodes_modes"]).copy()
    splits = numpy_helper.to_array(found_in["nodes_splits"]).copy()
    tracks = list(found_in["nodes_missing_value_tracks_true"])
    children = {
        key: list(found_in[key])
        for key in (
            "nodes_truenodeids",
            "nodes_trueleafs",
            "nodes_falsenodeids",
            "nodes_falseleafs",
        )
    }
    column_count = n_features
    for feature, found in sorted(per_feature.items()):
        chains: list[list[tuple[int, int]]] = []
        swapped: set[int] = set()
        # Sets reaching the most codes first: they are the hardest to fit beside others.
        for split in sorted(found, key=lambda s: -int(np.count_nonzero(s.reaching & s.members))):
            if _place(chains, split):
                swapped.add(split.node)
        table = np.empty((codes[feature], len(chains)), dtype=np.float64)
        for index, chain in enumerate(chains):
            rank = np.full(codes[feature], float(len(chain)))
            for position in range(len(chain) - 1, -1, -1):
                rank[_codes(chain[position][0], codes[feature])] = position
            table[:, index] = rank
            for position, (_, node) in enumerate(chain):
                features[node], modes[node], splits[node] = (
                    column_count + index,
                    _LEQ,
                    position + 0.5,
                )
                tracks[node] = 0  # a code is never missing: the front looks every column up
                if node in swapped:
                    for kind in ("nodeids", "leafs"):
                        true, false = f"nodes_true{kind}", f"nodes_false{kind}"
                        children[true][node], children[false][node] = (
                            children[false][node],
                            children[true][node],
                        )
        rewrite.tables.append(ClassTable(feature, table, column_count))
        rewrite.rewritten += len(found)
        column_count += len(chains)
    # The sets left: those a fallback kept (every rewritten node is a BRANCH_LEQ now).
    left = {node: values for node, values in member_lists(found_in).items() if modes[node] != _LEQ}
    new = with_attributes(
        forest,
        **children,
        nodes_featureids=features,
        nodes_modes=numpy_helper.from_array(modes),
        nodes_splits=numpy_helper.from_array(splits),
        nodes_missing_value_tracks_true=tracks,
        membership_values=membership_tensor(left, found_in["membership_values"]),
    )
    check(forest, new, rewrite, codes)
    return new, rewrite


def check(
    old: onnx.NodeProto, new: onnx.NodeProto, rewrite: Rewrite, codes: Mapping[int, int]
) -> None:
    """Every rewritten split sends every code that can reach it where the original split does.

    Raises:
        ValueError: A split that disagrees, named with its tree, node and the first code.
    """
    old_attributes, new_attributes = node_attributes(old), node_attributes(new)
    names = [str(feature) for feature in range(max(codes, default=0) + 1)]
    reached = {
        split.node: split
        for found in _splits(old_attributes, codes, names, Rewrite()).values()
        for split in found
    }
    columns = {
        table.first_column + index: (table, index)
        for table in rewrite.tables
        for index in range(table.classes.shape[1])
    }
    trees = tree_of(old_attributes)
    modes = numpy_helper.to_array(new_attributes["nodes_modes"])
    thresholds = numpy_helper.to_array(new_attributes["nodes_splits"])

    def child(forest: Mapping[str, Any], node: int, side: str) -> tuple[int, int]:
        return forest[f"nodes_{side}nodeids"][node], forest[f"nodes_{side}leafs"][node]

    for node, feature in enumerate(new_attributes["nodes_featureids"]):
        if feature not in columns:
            continue
        table, index = columns[feature]
        split = reached.get(node)
        if split is None or modes[node] not in COMPARISONS:
            raise ValueError(f"tree {trees[node]} node {node}: on a threshold column, not a split")
        to_true = COMPARISONS[int(modes[node])](table.classes[:, index], float(thresholds[node]))
        # Each code's destination before and after, as (node id, is a leaf) per side.
        sides = {
            name: np.asarray([child(forest, node, "false"), child(forest, node, "true")])
            for name, forest in (("old", old_attributes), ("new", new_attributes))
        }
        before = sides["old"][split.members.astype(int)]
        after = sides["new"][np.asarray(to_true, dtype=int)]
        wrong = split.reaching & (before != after).any(axis=1)
        if wrong.any():
            code = int(np.flatnonzero(wrong)[0])
            raise ValueError(
                f"tree {trees[node]} node {node}: threshold column {index} sends code {code} "
                f"to node {after[code][0]}, the booster to node {before[code][0]}"
            )
