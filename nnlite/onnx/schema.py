"""Field tables of the ONNX protos nnlite reads (field numbers as in ONNX's ``onnx.proto``).

Decoded by the project's generic wire-format decoder; message names carry an ``onnx.`` prefix so they
never collide with TensorFlow's tables. Only the fields the importer uses are listed.
"""

from __future__ import annotations

from ..savedmodel.wire import register

R, O = True, False  # repeated / optional

register("onnx.ModelProto", {
    1: ("ir_version", "int", O), 2: ("producer_name", "string", O), 3: ("producer_version", "string", O),
    7: ("graph", "onnx.GraphProto", O), 8: ("opset_import", "onnx.OperatorSetIdProto", R)})
register("onnx.OperatorSetIdProto", {1: ("domain", "string", O), 2: ("version", "int", O)})
register("onnx.GraphProto", {
    1: ("node", "onnx.NodeProto", R), 2: ("name", "string", O), 5: ("initializer", "onnx.TensorProto", R),
    11: ("input", "onnx.ValueInfoProto", R), 12: ("output", "onnx.ValueInfoProto", R),
    13: ("value_info", "onnx.ValueInfoProto", R)})
register("onnx.NodeProto", {
    1: ("input", "string", R), 2: ("output", "string", R), 3: ("name", "string", O), 4: ("op_type", "string", O),
    5: ("attribute", "onnx.AttributeProto", R), 7: ("domain", "string", O)})
register("onnx.AttributeProto", {
    1: ("name", "string", O), 20: ("type", "enum", O), 2: ("f", "float", O), 3: ("i", "int", O),
    4: ("s", "bytes", O), 5: ("t", "onnx.TensorProto", O), 6: ("g", "onnx.GraphProto", O),
    7: ("floats", "float", R), 8: ("ints", "int", R), 9: ("strings", "bytes", R),
    10: ("tensors", "onnx.TensorProto", R)})
register("onnx.ValueInfoProto", {1: ("name", "string", O), 2: ("type", "onnx.TypeProto", O)})
register("onnx.TypeProto", {1: ("tensor_type", "onnx.TypeTensor", O)})
register("onnx.TypeTensor", {1: ("elem_type", "int32", O), 2: ("shape", "onnx.TensorShapeProto", O)})
register("onnx.TensorShapeProto", {1: ("dim", "onnx.Dimension", R)})
register("onnx.Dimension", {1: ("dim_value", "int", O), 2: ("dim_param", "string", O)})
register("onnx.TensorProto", {
    1: ("dims", "int", R), 2: ("data_type", "int32", O), 4: ("float_data", "float", R),
    5: ("int32_data", "int32", R), 7: ("int64_data", "int", R), 8: ("name", "string", O),
    9: ("raw_data", "bytes", O), 10: ("double_data", "double", R), 11: ("uint64_data", "uint", R),
    13: ("external_data", "onnx.StringStringEntryProto", R), 14: ("data_location", "enum", O)})
register("onnx.StringStringEntryProto", {1: ("key", "string", O), 2: ("value", "string", O)})

# AttributeProto.type values
ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_GRAPH = 1, 2, 3, 4, 5
ATTR_FLOATS, ATTR_INTS, ATTR_STRINGS, ATTR_TENSORS = 6, 7, 8, 9
