"""The serving graph: raw schema fields in, price in RUB out, in one ONNX model.

Built by composition: a hand-written preprocessing front (onnx.helper), the booster converted
by onnxmltools, and a hand-written back (log offset, the market level as one constant, exp).
The front (`training.io.graph_front`) mirrors `training.core.encoding.feature_matrix`:

* the categorical fields (tensor(string) [N, 8]) → one ai.onnx.ml LabelEncoder → an id, with
  the unknown code's id as the encoder's default; one `Gather` per field by that id reads the
  field's code and its threshold columns (`training.io.threshold_columns`) from one table;
* the numeric fields (tensor(float) [N, 8]) → as they are; LightGBM turns a NaN into 0 for
  features it never saw missing (`missing_type: None`), and the forest sends such a NaN the
  way it sends 0 (`graph_front.route_missing_like_zero`), so no node rewrites it;
* one float32 matrix, which the forest reads as one `ai.onnx.ml.TreeEnsemble` (opset 5), not
  onnxmltools' equality chains (`training.io.tree_ensemble`), whose every node is a
  `BRANCH_LEQ`: each categorical split tests its field's threshold column.

Why float32 thresholds are safe here: the booster was trained on float32-rounded inputs
(see `training.core.encoding`), so every split threshold lies between two float32 values and
rounding it to float32 keeps each input on its side. The leaf values are summed in float32
(TreeEnsemble sums in its input's type): on the 2020 champion that moves prices by at most
2.9e-06 relative to LightGBM's, against 2.2e-06 with the forest in float64 (the forms
`thresholds` and before), under the issue's 1e-5 and the export's gate
(`export.parity_tolerance`). The export's parity check measures it on every test row.
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
    grouped_inputs,
    manifest_inputs,
)
from training.core.intervals import IntervalTable
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import graph_front, interval_tree, member_sets, threshold_columns, tree_ensemble

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
#: BRANCH_MEMBER per split on the field's code, that on class columns (each set a bitmask), or
#: every split a BRANCH_LEQ on threshold columns, in float64 or in float32 (`thresholds_f32`,
#: what is exported; the others stay for the comparison in `studies/forest_representation`
#: and `make bench`).
ForestForm = Literal["chains", "sets", "class_columns", "thresholds", "thresholds_f32"]
#: The graph input's element type per manifest input type, both ways (`input_spec`).
#: The graph metadata key (then the input's name) listing a grouped input's fields.
_FIELDS_KEY: Final = "car_price.input_fields."
_TENSOR_TYPES: Final[Mapping[InputType, int]] = {
    "string": TensorProto.STRING,
    "float": TensorProto.FLOAT,
}


def build_graph(
    pipeline: PricePipeline, *, opset: int = 17, forest: ForestForm = "thresholds_f32"
) -> onnx.ModelProto:
    """Compose the serving graph for a trained pipeline.

    Args:
        pipeline: The trained encoding + booster + log offset.
        opset: The default-domain opset of the graph.
        forest: How the categorical splits are written (`ForestForm`).

    Returns:
        A checked ONNX model with the output `price`, fed the schema's fields as two grouped
        inputs (`shared_schema.bundle.grouped_inputs`), or one input per field for the
        forms kept for comparison (`chains`, `sets`: the graph as it was before issue 21).
    """
    trees, layout = _convert_booster(pipeline, opset, forest)
    # LabelEncoder with string keys and float or int64 values needs ai.onnx.ml 2.
    ml_opset = max([2, *(o.version for o in trees.opset_import if o.domain == _ML_DOMAIN)])
    if layout is None:
        front, front_inits = graph_front.column_front(pipeline, _TREE_INPUT)
        fed = manifest_inputs()
    else:
        fed = grouped_inputs()
        front, front_inits = graph_front.lookup_front(
            pipeline, layout, fed, _TREE_INPUT, wide=forest != "thresholds_f32"
        )
    back = [
        helper.make_node(
            "Add", [_TREE_OUTPUT, "log_offset"], [_RELATIVE_LOG_PRICE], name="log_offset"
        ),
        helper.make_node(
            "Add", [_RELATIVE_LOG_PRICE, MARKET_LEVEL], ["log_price"], name=MARKET_LEVEL
        ),
    ]
    outputs = [PRICE_OUTPUT]
    back_inits: list[onnx.TensorProto] = []
    if pipeline.interval is None:
        back.append(helper.make_node("Exp", ["log_price"], [PRICE_OUTPUT], name="to_rub"))
    elif layout is not None:
        nodes, back_inits = interval_tree.interval_nodes(
            pipeline.interval, _RELATIVE_LOG_PRICE, "log_price"
        )
        back += nodes
        outputs += [LOWER_OUTPUT, UPPER_OUTPUT]
    else:  # the graph before issue 21 (`chains`, `sets`), kept for the comparison
        back.append(helper.make_node("Exp", ["log_price"], [PRICE_OUTPUT], name="to_rub"))
        nodes, back_inits = _interval(pipeline.interval)
        back += nodes
        outputs += [LOWER_OUTPUT, UPPER_OUTPUT]
    inputs = [
        helper.make_tensor_value_info(
            item.name, _TENSOR_TYPES[item.type], [None, len(item.columns)]
        )
        for item in fed
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
    for item in fed:
        if item.fields:
            entry = model.metadata_props.add()
            entry.key, entry.value = f"{_FIELDS_KEY}{item.name}", ",".join(item.fields)
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

    A grouped input's fields are read from the graph's metadata (`build_graph` writes them).

    Raises:
        PipelineError: An input of an element type no manifest input type has, or an input
            that is neither a `Car` field nor listed with its fields in the metadata (named).
    """
    input_types = {tensor: name for name, tensor in _TENSOR_TYPES.items()}
    grouped = {
        entry.key.removeprefix(_FIELDS_KEY): tuple(entry.value.split(","))
        for entry in model.metadata_props
        if entry.key.startswith(_FIELDS_KEY)
    }
    spec = []
    for value in model.graph.input:
        elem_type = value.type.tensor_type.elem_type
        if elem_type not in input_types:
            raise PipelineError(
                f"graph input {value.name!r} has element type "
                f"{TensorProto.DataType.Name(elem_type)}, not STRING or FLOAT"
            )
        if value.name not in FIELD_NAMES and value.name not in grouped:
            raise PipelineError(
                f"graph input {value.name!r} is not a Car field, and the graph's metadata "
                f"does not list its fields ({_FIELDS_KEY}{value.name})"
            )
        fields = grouped.get(value.name, ())
        spec.append(ManifestInput(value.name, input_types[elem_type], fields))
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


def _convert_booster(
    pipeline: PricePipeline, opset: int, forest: ForestForm
) -> tuple[onnx.ModelProto, graph_front.Layout | None]:
    """The booster as one tree ensemble reading `features`, and the layout of that matrix.

    The layout is None for onnxmltools' chains, which read the fields in `FIELD_NAMES` order
    (`graph_front.column_front`).
    """
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import DoubleTensorType, FloatTensorType

    tensor_type = FloatTensorType if forest == "thresholds_f32" else DoubleTensorType
    converted: onnx.ModelProto = convert_lightgbm(
        pipeline.booster,
        initial_types=[(_TREE_INPUT, tensor_type([None, len(FIELD_NAMES)]))],
        # onnxmltools converts up to opset 15; its nodes are valid under the graph's opset too.
        target_opset=min(opset, 15),
        zipmap=False,
    )
    layout = None
    if forest != "chains":
        converted, layout = _collapse(pipeline, converted, forest)
    outputs = [o.name for o in converted.graph.output]
    if len(outputs) != 1:
        raise ValueError(f"converted booster has outputs {outputs}, expected one")
    for node in converted.graph.node:
        node.name = f"trees_{node.name}"  # unique beside the front and back nodes
        node.output[:] = [_TREE_OUTPUT if o == outputs[0] else o for o in node.output]
    return converted, layout


def _collapse(
    pipeline: PricePipeline, converted: onnx.ModelProto, forest: ForestForm
) -> tuple[onnx.ModelProto, graph_front.Layout | None]:
    """One node per categorical split: a set, or a threshold on a looked-up column.

    Same prices as onnxmltools' chains of equality tests, a forest less than half the size
    (`training.io.tree_ensemble`). With `class_columns` the large sets are tested on class
    columns with a bitmask (`training.io.member_sets`); with `thresholds` every categorical
    split is a BRANCH_LEQ on a threshold column (`training.io.threshold_columns`), so the whole
    forest is one node mode. Either way the forest then reads `graph_front.lookup_front`'s
    matrix, and sends NaN the way LightGBM does for the features it never saw missing; with
    `sets` (the graph before issue 21), it reads the fields in `FIELD_NAMES` order and the
    layout is None.
    """
    collapsed, counts = tree_ensemble.collapse_categorical_chains(converted.SerializeToString())
    converted = onnx.load_from_string(collapsed)
    log.info("forest: %(nodes_before)d nodes as chains, %(nodes_after)d as sets", counts)
    rewrite = member_sets.Rewrite()
    if forest == "sets":
        return converted, None
    codes = {
        FIELD_NAMES.index(name): len(pipeline.vocabulary.categories[name]) + 1
        for name in CATEGORICAL_FIELDS
    }
    nan_as_zero = graph_front.features_without_missing(pipeline)
    layout = graph_front.Layout({})
    recode = (
        member_sets.to_class_columns
        if forest == "class_columns"
        else threshold_columns.to_threshold_columns
    )
    for position, node in enumerate(converted.graph.node):
        if node.op_type != "TreeEnsemble":
            continue
        trees, rewrite = recode(node, codes, len(FIELD_NAMES), list(FIELD_NAMES))
        trees = graph_front.route_missing_like_zero(trees, nan_as_zero)
        layout = graph_front.Layout({table.feature: table for table in rewrite.tables})
        converted.graph.node[position].CopyFrom(layout.move(trees))
    # A split left on its codes is still exact (onnxruntime's set paths), only slower.
    log.log(
        logging.WARNING if rewrite.fallbacks else logging.INFO,
        "forest: %d categorical splits on %d %s columns, %d left as sets%s",
        rewrite.rewritten,
        sum(table.classes.shape[1] for table in rewrite.tables),
        "class" if forest == "class_columns" else "threshold",
        len(rewrite.fallbacks),
        "".join(f"\n  {split}" for split in rewrite.fallbacks),
    )
    return converted, layout
