"""The serving graph's front: raw schema fields in, the forest's input matrix out.

Two fronts, both mirroring `training.core.encoding.feature_matrix`:

* `lookup_front`, for the forest as one `ai.onnx.ml.TreeEnsemble` (what is exported), fed
  the fields as two grouped inputs (`shared_schema.bundle.grouped_inputs`). One `LabelEncoder`
  gives every string of the categorical input an id in the union of the fields' vocabularies
  (0 for none), and each field is one `Gather` by that id from a table whose row is the
  field's code (the unknown code for another field's string) followed by its lookup columns:
  threshold columns (`training.io.threshold_columns`, what is exported) or class columns
  (`training.io.member_sets`). The matrix is float32 as exported (the numeric input as it
  is), or float64 for the forms kept for comparison (the numeric input cast once). It
  is laid out numeric fields first, then each categorical field's code and lookup columns
  (`Layout`), and the forest's feature ids are moved to match (`Layout.move`). LightGBM's
  NaN → 0 for features it never saw missing is not a node here: each split on such a feature
  sends a NaN the way it sends 0 (`route_missing_like_zero`), which is the same decision.
  Fewer nodes: onnxruntime's per-node and per-input overhead is most of the one-car call
  (issue 21; 49 nodes and 16 inputs before, 25 and 2 now).
* `column_front`, for the graphs kept for the benchmarks' comparison (onnxmltools' chains,
  and the sets as exported before issue 21), fed one input per field: a `LabelEncoder` to the
  float code per categorical field, `IsNaN`/`Where` per numeric field the booster never saw
  missing, `Concat`, cast to float64.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES
from shared_schema.bundle import ManifestInput
from training.core.encoding import UNKNOWN_CODE
from training.core.model import PricePipeline
from training.io.member_sets import ClassTable
from training.io.tree_ensemble import (
    COMPARISONS,
    MEMBER_MODE,
    member_lists,
    node_attributes,
    with_attributes,
)

_ML_DOMAIN: Final = "ai.onnx.ml"


def features_without_missing(pipeline: PricePipeline) -> set[int]:
    """Feature indices whose splits never track missing values (LightGBM maps NaN to 0)."""
    with_missing: set[int] = set()

    def visit(node: dict[str, object]) -> None:
        if "split_feature" in node:
            if node.get("missing_type") == "NaN":
                with_missing.add(int(node["split_feature"]))  # type: ignore[call-overload]
            visit(node["left_child"])  # type: ignore[arg-type]
            visit(node["right_child"])  # type: ignore[arg-type]

    for tree in pipeline.booster.dump_model()["tree_info"]:
        visit(tree["tree_structure"])
    return set(range(len(FIELD_NAMES))) - with_missing


@dataclass(frozen=True)
class Layout:
    """Where each of the forest's input columns goes in `lookup_front`'s matrix."""

    tables: dict[int, ClassTable]

    @property
    def numeric(self) -> list[int]:
        """The numeric fields' indices, in `FIELD_NAMES` order: the matrix's first columns."""
        return [i for i, name in enumerate(FIELD_NAMES) if name not in CATEGORICAL_FIELDS]

    @property
    def categorical(self) -> list[int]:
        """The categorical fields' indices: each field's code, then its lookup columns."""
        return [i for i, name in enumerate(FIELD_NAMES) if name in CATEGORICAL_FIELDS]

    def positions(self) -> dict[int, int]:
        """Old column (field index, or a lookup column after them) → its column in the matrix."""
        moved = {old: new for new, old in enumerate(self.numeric)}
        for field in self.categorical:
            moved[field] = len(moved)
            table = self.tables.get(field)
            for column in range(table.classes.shape[1] if table else 0):
                moved[table.first_column + column] = len(moved)  # type: ignore[union-attr]
        return moved

    def move(self, forest: onnx.NodeProto) -> onnx.NodeProto:
        """The forest reading this layout's matrix (every feature id moved)."""
        moved = self.positions()
        return with_attributes(
            forest, nodes_featureids=[moved[f] for f in node_attributes(forest)["nodes_featureids"]]
        )


def route_missing_like_zero(forest: onnx.NodeProto, features: set[int]) -> onnx.NodeProto:
    """The forest sending a NaN in each of `features` the way it sends 0.

    That is LightGBM's own rule for a feature it never saw missing (`missing_type: None`): it
    replaces NaN by 0 before comparing. Each split's `nodes_missing_value_tracks_true` is set to
    where 0 goes, so the graph needs no NaN → 0 node.

    Raises:
        ValueError: A node mode TreeEnsemble does not define, on one of `features` (named).
    """
    attributes = node_attributes(forest)
    modes = numpy_helper.to_array(attributes["nodes_modes"]).tolist()
    splits = numpy_helper.to_array(attributes["nodes_splits"]).tolist()
    routed = [
        node for node, feature in enumerate(attributes["nodes_featureids"]) if feature in features
    ]
    for node in routed:
        if modes[node] != MEMBER_MODE and modes[node] not in COMPARISONS:
            feature = attributes["nodes_featureids"][node]
            raise ValueError(f"node {node} (feature {feature}): unknown node mode {modes[node]}")
    members = member_lists(attributes)
    tracks = list(attributes["nodes_missing_value_tracks_true"])
    for node in routed:
        if modes[node] == MEMBER_MODE:
            tracks[node] = int(0.0 in members[node])
        else:
            tracks[node] = int(COMPARISONS[modes[node]](0.0, float(splits[node])))
    return with_attributes(forest, nodes_missing_value_tracks_true=tracks)


def lookup_front(
    pipeline: PricePipeline,
    layout: Layout,
    inputs: list[ManifestInput],
    matrix: str,
    *,
    wide: bool = True,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Grouped raw fields → `matrix` [N, columns], in `layout`'s column order.

    The matrix is float64, or float32 when not `wide` (what is exported).

    `inputs` are the graph's two grouped inputs (`shared_schema.bundle.grouped_inputs`): the
    categorical fields' strings [N, k] and the numeric fields [N, m], each in `layout`'s order.
    """
    # `wide`: the forest runs in float64, and onnxruntime sums its leaf values in float64 too
    # (the `class_columns` and `thresholds` forms). Exported: float32 (`thresholds_f32`), whose
    # price error and speed `training.io.onnx_graph` states. The cast to float64 is exact, so
    # comparisons against the (float32-rounded) thresholds are the same either way.
    nodes: list[onnx.NodeProto] = []
    inits = [numpy_helper.from_array(np.array([1], dtype=np.int64), "front_axis")]
    strings, numbers = inputs
    categorical = [FIELD_NAMES[i] for i in layout.categorical]
    if (strings.type, numbers.type) != ("string", "float") or (
        list(strings.fields),
        list(numbers.fields),
    ) != (categorical, [FIELD_NAMES[i] for i in layout.numeric]):
        raise ValueError(f"inputs {inputs} are not the layout's fields in its order")
    # One LabelEncoder for every categorical column: each distinct string of any field's
    # vocabulary gets an id (0: in none), and each field's table is indexed by that id.
    vocabularies = {name: list(pipeline.vocabulary.categories[name]) for name in categorical}
    strings_known = sorted({value for known in vocabularies.values() for value in known})
    keys = strings_known or ["\x00"]
    nodes += [
        helper.make_node(
            "LabelEncoder",
            [strings.name],
            ["categorical_ids"],
            name="encode_categorical",
            domain=_ML_DOMAIN,
            keys_strings=keys,
            values_int64s=list(range(1, len(keys) + 1)),
            default_int64=0,
        ),
        helper.make_node(
            "Split",
            ["categorical_ids"],
            [f"{name}__id" for name in categorical],
            axis=1,
            name="split_categorical",
        ),
    ]
    numeric = numbers.name
    if wide:
        numeric = "numeric_f64"
        nodes.append(helper.make_node("Cast", [numbers.name], [numeric], to=TensorProto.DOUBLE))
    # [N, 1, numeric]: the lookups below are [N, 1, columns] (their index is [N, 1]).
    nodes.append(helper.make_node("Unsqueeze", [numeric, "front_axis"], ["numeric_block"]))
    blocks = ["numeric_block"]
    for field, name in zip(layout.categorical, categorical, strict=True):
        known = vocabularies[name]
        codes = np.arange(len(known) + 1, dtype=np.float64).reshape(-1, 1)
        table = layout.tables.get(field)
        by_code = codes if table is None else np.hstack([codes, table.classes])
        # The field's code of each id: its own code (known[i] → i + 1), else the unknown code.
        own = {value: code + 1 for code, value in enumerate(known)}
        code_of_id = [UNKNOWN_CODE] + [own.get(value, UNKNOWN_CODE) for value in keys]
        if len(keys) != len(strings_known):  # the placeholder key is no field's value
            code_of_id[1] = UNKNOWN_CODE
        rows = by_code[code_of_id].astype(np.float64 if wide else np.float32)
        inits.append(numpy_helper.from_array(rows, f"{name}__rows"))
        nodes.append(
            helper.make_node("Gather", [f"{name}__rows", f"{name}__id"], [f"{name}__block"], axis=0)
        )
        blocks.append(f"{name}__block")
    nodes += [
        helper.make_node("Concat", blocks, ["matrix_block"], axis=2, name="features"),
        helper.make_node("Squeeze", ["matrix_block", "front_axis"], [matrix]),
    ]
    return nodes, inits


def column_front(
    pipeline: PricePipeline, matrix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Raw fields → `matrix` [N, fields] float64, in `FIELD_NAMES` order."""
    nodes: list[onnx.NodeProto] = []
    columns: list[str] = []
    nan_as_zero = features_without_missing(pipeline)
    for index, name in enumerate(FIELD_NAMES):
        column = f"{name}__feature"
        if name in CATEGORICAL_FIELDS:
            known = list(pipeline.vocabulary.categories[name])
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [name],
                    [column],
                    name=f"encode_{name}",
                    domain=_ML_DOMAIN,
                    keys_strings=known or ["\x00"],
                    values_floats=[float(code + 1) for code in range(len(known))] or [0.0],
                    default_float=float(UNKNOWN_CODE),
                )
            )
        elif index in nan_as_zero:
            nodes += [
                helper.make_node("IsNaN", [name], [f"{name}__isnan"], name=f"isnan_{name}"),
                helper.make_node(
                    "Where", [f"{name}__isnan", "zero", name], [column], name=f"fill_{name}"
                ),
            ]
        else:
            nodes.append(helper.make_node("Identity", [name], [column], name=f"pass_{name}"))
        columns.append(column)
    nodes += [
        helper.make_node("Concat", columns, ["features_f32"], axis=1, name="features"),
        helper.make_node("Cast", ["features_f32"], [matrix], to=TensorProto.DOUBLE),
    ]
    return nodes, [numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero")]
