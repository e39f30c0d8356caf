"""The serving graph: raw schema fields in, price in RUB out, in one ONNX model.

Built by composition: a hand-written preprocessing front (onnx.helper), the booster converted
by onnxmltools, and a hand-written back (log offset, the market level as one constant, exp).
The front mirrors `training.core.encoding.feature_matrix` node for node:

* categorical field (tensor(string) [N, 1]) → ai.onnx.ml LabelEncoder → code, with the
  unknown code as the encoder's default;
* numeric field (tensor(float) [N, 1]) → passed through as float32; a NaN becomes 0 for
  features the booster never saw missing, because LightGBM does exactly that at prediction
  time (`missing_type: None`), while ONNX tree ensembles would route NaN to the false branch;
* Concat → the [N, 16] float32 feature matrix the tree ensemble reads (cast to double);
* the forest as one `ai.onnx.ml.TreeEnsemble` (opset 5) whose categorical splits are
  set-membership nodes (`training.io.tree_ensemble`), not onnxmltools' equality chains; a set
  onnxruntime cannot test with its bitmask is tested on a class column instead, looked up by
  the field's code with one `Gather` per field and appended to the matrix
  (`training.io.member_sets`).

Why float32 thresholds are safe here: the booster was trained on float32-rounded inputs
(see `training.core.encoding`), so every split threshold lies between two float32 values and
rounding it to float32 keeps each input on its side. The export's parity check measures it.
"""

import logging
from collections.abc import Mapping
from typing import Final, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES
from shared_schema.bundle import (
    LOWER_OUTPUT,
    PRICE_OUTPUT,
    UPPER_OUTPUT,
    InputType,
    ManifestInput,
    manifest_inputs,
)
from training.core.encoding import UNKNOWN_CODE
from training.core.intervals import IntervalTable
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import member_sets, tree_ensemble

log = logging.getLogger(__name__)

_ML_DOMAIN = "ai.onnx.ml"
_TREE_INPUT = "features"
_TREE_OUTPUT = "log_price_raw"
#: The log price relative to the market: the interval's bins are on it.
_RELATIVE_LOG_PRICE = "log_price_relative"
#: The one constant that carries the market: the served log level (`car-train refresh-level`
#: replaces only this initializer).
MARKET_LEVEL: Final = "market_level"
#: How the forest's categorical splits are written: onnxmltools' equality chains, one
#: BRANCH_MEMBER per split on the field's code, or that on class columns (what is exported;
#: the other two stay for the benchmarks' comparison, `benchmarks/representations.py`).
ForestForm = Literal["chains", "sets", "class_columns"]
#: The graph input's element type per manifest input type, both ways (`input_spec`).
_TENSOR_TYPES: Final[Mapping[InputType, int]] = {
    "string": TensorProto.STRING,
    "float": TensorProto.FLOAT,
}


def build_graph(
    pipeline: PricePipeline, *, opset: int = 17, forest: ForestForm = "class_columns"
) -> onnx.ModelProto:
    """Compose the serving graph for a trained pipeline.

    Args:
        pipeline: The trained encoding + booster + log offset.
        opset: The default-domain opset of the graph.
        forest: How the categorical splits are written (`ForestForm`).

    Returns:
        A checked ONNX model with one input per schema field and the output `price`.
    """
    trees, rewrite = _convert_booster(pipeline, opset, forest)
    # LabelEncoder with string keys and float values needs ai.onnx.ml 2.
    ml_opset = max([2, *(o.version for o in trees.opset_import if o.domain == _ML_DOMAIN)])
    front, front_inits = _front(pipeline, rewrite.tables)
    back = [
        helper.make_node(
            "Add", [_TREE_OUTPUT, "log_offset"], [_RELATIVE_LOG_PRICE], name="log_offset"
        ),
        helper.make_node(
            "Add", [_RELATIVE_LOG_PRICE, MARKET_LEVEL], ["log_price"], name=MARKET_LEVEL
        ),
        helper.make_node("Exp", ["log_price"], [PRICE_OUTPUT], name="to_rub"),
    ]
    outputs = [PRICE_OUTPUT]
    back_inits: list[onnx.TensorProto] = []
    if pipeline.interval is not None:
        interval_nodes, back_inits = _interval(pipeline.interval)
        back += interval_nodes
        outputs += [LOWER_OUTPUT, UPPER_OUTPUT]
    inputs = [
        helper.make_tensor_value_info(item.name, _TENSOR_TYPES[item.type], [None, 1])
        for item in manifest_inputs()
    ]
    graph = helper.make_graph(
        [*front, *trees.graph.node, *back],
        "car_price",
        inputs,
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]) for name in outputs],
        initializer=[
            *front_inits,
            *back_inits,
            *trees.graph.initializer,
            numpy_helper.from_array(
                np.array([pipeline.log_offset], dtype=np.float32), "log_offset"
            ),
            market_level_tensor(pipeline.served_level),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(_ML_DOMAIN, ml_opset)],
        producer_name="car-price-training",
        doc_string="Used-car price in RUB from the raw shared_schema.Car fields.",
    )
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model, full_check=True)
    return model


def market_level_tensor(level: float) -> onnx.TensorProto:
    """The graph's `MARKET_LEVEL` initializer holding the served log level."""
    return numpy_helper.from_array(np.array([level], dtype=np.float32), MARKET_LEVEL)


def with_market_level(model_bytes: bytes, level: float) -> bytes:
    """The same graph serving another market level: only `MARKET_LEVEL` changes.

    Raises:
        PipelineError: The graph has no `MARKET_LEVEL` (exported before the market index).
    """
    model = onnx.load_from_string(model_bytes)
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name == MARKET_LEVEL:
            model.graph.initializer[index].CopyFrom(market_level_tensor(level))
            refreshed: bytes = model.SerializeToString()
            return refreshed
    raise PipelineError(
        f"the graph has no {MARKET_LEVEL!r} constant: it was exported before the market index; "
        "retrain it (`car-train retrain`) instead of refreshing its level"
    )


def input_spec(model: onnx.ModelProto) -> list[ManifestInput]:
    """The graph's own inputs, as the manifest records them and the feed rule takes them.

    Raises:
        PipelineError: An input of an element type no manifest input type has (named).
    """
    input_types = {tensor: name for name, tensor in _TENSOR_TYPES.items()}
    spec = []
    for value in model.graph.input:
        elem_type = value.type.tensor_type.elem_type
        if elem_type not in input_types:
            raise PipelineError(
                f"graph input {value.name!r} has element type "
                f"{TensorProto.DataType.Name(elem_type)}, not STRING or FLOAT"
            )
        spec.append(ManifestInput(value.name, input_types[elem_type]))
    return spec


def _interval(table: IntervalTable) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """`training.core.intervals.IntervalTable.bounds` as nodes, clamped around the price.

    bin = number of edges the market-relative log price exceeds; bound = exp(log price +
    offset[bin]), so both bounds scale with the market level like the price; then
    Min/Max with the price, so `price_lower <= price <= price_upper` holds on every row
    whatever the offsets.
    """
    # With one bin there is no edge; +max float keeps the Greater/ReduceSum shape valid.
    edges = list(table.edges) or [float(np.finfo(np.float32).max)]
    lower = list(table.lower) if table.edges else [table.lower[0]] * 2
    upper = list(table.upper) if table.edges else [table.upper[0]] * 2
    inits = [
        numpy_helper.from_array(np.array([edges], dtype=np.float32), "interval_edges"),
        numpy_helper.from_array(np.array(lower, dtype=np.float32), "interval_lower"),
        numpy_helper.from_array(np.array(upper, dtype=np.float32), "interval_upper"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "interval_axis"),
    ]
    nodes = [
        helper.make_node("Greater", [_RELATIVE_LOG_PRICE, "interval_edges"], ["above_edge"]),
        helper.make_node("Cast", ["above_edge"], ["above_edge_i"], to=TensorProto.INT64),
        helper.make_node(
            "ReduceSum", ["above_edge_i", "interval_axis"], ["interval_bin"], keepdims=1
        ),
    ]
    for side, offsets, clamp, output in (
        ("lower", "interval_lower", "Min", LOWER_OUTPUT),
        ("upper", "interval_upper", "Max", UPPER_OUTPUT),
    ):
        nodes += [
            helper.make_node("Gather", [offsets, "interval_bin"], [f"{side}_offset"], axis=0),
            helper.make_node("Add", ["log_price", f"{side}_offset"], [f"{side}_log_price"]),
            helper.make_node("Exp", [f"{side}_log_price"], [f"{side}_raw"]),
            helper.make_node(clamp, [f"{side}_raw", PRICE_OUTPUT], [output]),
        ]
    return nodes, inits


def _front(
    pipeline: PricePipeline, tables: list[member_sets.ClassTable]
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    nodes: list[onnx.NodeProto] = []
    columns: list[str] = []
    nan_as_zero = _features_without_missing(pipeline)
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
    nodes.append(helper.make_node("Concat", columns, ["features_f32"], axis=1, name="features"))
    # The trees run in double: onnxruntime then sums the leaf values in double too, which keeps
    # the graph within ~1e-6 of LightGBM over thousands of trees (float32 sums drift to ~5e-5).
    # The cast is exact, so comparisons against the (float32-rounded) thresholds are unchanged.
    codes = "features_codes" if tables else _TREE_INPUT
    nodes.append(
        helper.make_node("Cast", ["features_f32"], [codes], to=TensorProto.DOUBLE, name="to_double")
    )
    inits = [numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero")]
    if tables:
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "column_axis"))
    looked_up = [codes]
    for table in tables:
        name = f"{FIELD_NAMES[table.feature]}__classes"
        code = f"{FIELD_NAMES[table.feature]}__feature"
        inits.append(numpy_helper.from_array(table.classes, f"{name}_table"))
        nodes += [
            helper.make_node("Cast", [code], [f"{code}_i64"], to=TensorProto.INT64),
            helper.make_node("Squeeze", [f"{code}_i64", "column_axis"], [f"{code}_index"]),
            helper.make_node("Gather", [f"{name}_table", f"{code}_index"], [name], axis=0),
        ]
        looked_up.append(name)
    if tables:
        nodes.append(helper.make_node("Concat", looked_up, [_TREE_INPUT], axis=1, name="classes"))
    return nodes, inits


def _features_without_missing(pipeline: PricePipeline) -> set[int]:
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


def _convert_booster(
    pipeline: PricePipeline, opset: int, forest: ForestForm
) -> tuple[onnx.ModelProto, member_sets.Rewrite]:
    """The booster as one TreeEnsemble: `features` [N, 16 + class columns] → `log_price_raw`."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import DoubleTensorType

    converted: onnx.ModelProto = convert_lightgbm(
        pipeline.booster,
        initial_types=[(_TREE_INPUT, DoubleTensorType([None, len(FIELD_NAMES)]))],
        # onnxmltools converts up to opset 15; its nodes are valid under the graph's opset too.
        target_opset=min(opset, 15),
        zipmap=False,
    )
    rewrite = member_sets.Rewrite()
    if forest != "chains":
        converted, rewrite = _collapse(pipeline, converted, class_columns=forest == "class_columns")
    outputs = [o.name for o in converted.graph.output]
    if len(outputs) != 1:
        raise ValueError(f"converted booster has outputs {outputs}, expected one")
    for node in converted.graph.node:
        node.name = f"trees_{node.name}"  # unique beside the front and back nodes
        node.output[:] = [_TREE_OUTPUT if o == outputs[0] else o for o in node.output]
    return converted, rewrite


def _collapse(
    pipeline: PricePipeline, converted: onnx.ModelProto, *, class_columns: bool
) -> tuple[onnx.ModelProto, member_sets.Rewrite]:
    """One set-membership node per categorical split, on class columns where the set is large.

    Same prices as onnxmltools' chains of equality tests, a forest less than half the size
    (`training.io.tree_ensemble`), and sets onnxruntime tests with a bitmask
    (`training.io.member_sets`).
    """
    collapsed, counts = tree_ensemble.collapse_categorical_chains(converted.SerializeToString())
    converted = onnx.load_from_string(collapsed)
    log.info("forest: %(nodes_before)d nodes as chains, %(nodes_after)d as sets", counts)
    rewrite = member_sets.Rewrite()
    if not class_columns:
        return converted, rewrite
    codes = {
        FIELD_NAMES.index(name): len(pipeline.vocabulary.categories[name]) + 1
        for name in CATEGORICAL_FIELDS
    }
    for position, node in enumerate(converted.graph.node):
        if node.op_type == "TreeEnsemble":
            new, rewrite = member_sets.to_class_columns(
                node, codes, len(FIELD_NAMES), list(FIELD_NAMES)
            )
            converted.graph.node[position].CopyFrom(new)
    # A split left on its codes is still exact (onnxruntime's hash-set path), only slower.
    log.log(
        logging.WARNING if rewrite.fallbacks else logging.INFO,
        "forest: %d categorical splits on %d class columns, %d left as large sets%s",
        rewrite.rewritten,
        sum(table.classes.shape[1] for table in rewrite.tables),
        len(rewrite.fallbacks),
        "".join(f"\n  {split}" for split in rewrite.fallbacks),
    )
    return converted, rewrite
