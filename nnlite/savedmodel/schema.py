"""Field tables of the TensorFlow protos nnlite reads (field numbers as in TensorFlow's .proto files).

Only the fields the loader uses are listed; everything else is skipped while decoding. Kinds: ``int``
(int64), ``int32``, ``uint``, ``bool``, ``enum``, ``float``, ``double``, ``fixed32``, ``string``, ``bytes``,
a message type name, or ``(key_kind, value_kind)`` for a map.
"""

from __future__ import annotations

from .wire import register

R, O = True, False  # repeated / optional

register("SavedModel", {1: ("saved_model_schema_version", "int", O), 2: ("meta_graphs", "MetaGraphDef", R)})
register("MetaGraphDef", {
    1: ("meta_info_def", "MetaInfoDef", O), 2: ("graph_def", "GraphDef", O), 3: ("saver_def", "SaverDef", O),
    5: ("signature_def", ("string", "SignatureDef"), R), 7: ("object_graph_def", "SavedObjectGraph", O)})
register("MetaInfoDef", {
    1: ("meta_graph_version", "string", O), 2: ("stripped_op_list", "OpList", O), 4: ("tags", "string", R),
    5: ("tensorflow_version", "string", O), 7: ("stripped_default_attrs", "bool", O)})
register("SaverDef", {
    1: ("filename_tensor_name", "string", O), 2: ("save_tensor_name", "string", O),
    3: ("restore_op_name", "string", O), 7: ("version", "enum", O)})
register("OpList", {1: ("op", "OpDef", R)})
register("OpDef", {
    1: ("name", "string", O), 2: ("input_arg", "ArgDef", R), 3: ("output_arg", "ArgDef", R),
    4: ("attr", "AttrDef", R)})
register("ArgDef", {
    1: ("name", "string", O), 3: ("type", "enum", O), 4: ("type_attr", "string", O),
    5: ("number_attr", "string", O), 6: ("type_list_attr", "string", O)})
register("AttrDef", {1: ("name", "string", O), 2: ("type", "string", O), 3: ("default_value", "AttrValue", O)})

register("GraphDef", {1: ("node", "NodeDef", R), 2: ("library", "FunctionDefLibrary", O)})
register("NodeDef", {
    1: ("name", "string", O), 2: ("op", "string", O), 3: ("input", "string", R), 4: ("device", "string", O),
    5: ("attr", ("string", "AttrValue"), R)})
register("FunctionDefLibrary", {1: ("function", "FunctionDef", R)})
register("FunctionDef", {
    1: ("signature", "OpDef", O), 3: ("node_def", "NodeDef", R), 4: ("ret", ("string", "string"), R)})
register("AttrValue", {
    1: ("list", "ListValue", O), 2: ("s", "bytes", O), 3: ("i", "int", O), 4: ("f", "float", O),
    5: ("b", "bool", O), 6: ("type", "enum", O), 7: ("shape", "TensorShapeProto", O),
    8: ("tensor", "TensorProto", O), 9: ("placeholder", "string", O), 10: ("func", "NameAttrList", O)})
register("ListValue", {
    2: ("s", "bytes", R), 3: ("i", "int", R), 4: ("f", "float", R), 5: ("b", "bool", R), 6: ("type", "enum", R),
    7: ("shape", "TensorShapeProto", R), 8: ("tensor", "TensorProto", R), 9: ("func", "NameAttrList", R)})
register("NameAttrList", {1: ("name", "string", O), 2: ("attr", ("string", "AttrValue"), R)})
register("TensorProto", {
    1: ("dtype", "enum", O), 2: ("tensor_shape", "TensorShapeProto", O), 4: ("tensor_content", "bytes", O),
    5: ("float_val", "float", R), 6: ("double_val", "double", R), 7: ("int_val", "int32", R),
    8: ("string_val", "bytes", R), 10: ("int64_val", "int", R), 11: ("bool_val", "bool", R),
    13: ("half_val", "int32", R), 16: ("uint32_val", "uint", R), 17: ("uint64_val", "uint", R)})
register("TensorShapeProto", {2: ("dim", "Dim", R), 3: ("unknown_rank", "bool", O)})
register("Dim", {1: ("size", "int", O), 2: ("name", "string", O)})

register("SignatureDef", {
    1: ("inputs", ("string", "TensorInfo"), R), 2: ("outputs", ("string", "TensorInfo"), R),
    3: ("method_name", "string", O)})
register("TensorInfo", {1: ("name", "string", O), 2: ("dtype", "enum", O), 3: ("tensor_shape", "TensorShapeProto", O)})

register("SavedObjectGraph", {
    1: ("nodes", "SavedObject", R), 2: ("concrete_functions", ("string", "SavedConcreteFunction"), R)})
register("SavedObject", {
    1: ("children", "ObjectReference", R), 4: ("user_object", "SavedUserObject", O),
    6: ("function", "SavedFunction", O), 7: ("variable", "SavedVariable", O),
    8: ("bare_concrete_function", "SavedBareConcreteFunction", O)})
register("ObjectReference", {1: ("node_id", "int32", O), 2: ("local_name", "string", O)})
register("SavedUserObject", {1: ("identifier", "string", O)})
register("SavedFunction", {1: ("concrete_functions", "string", R)})
register("SavedBareConcreteFunction", {1: ("concrete_function_name", "string", O)})
register("SavedConcreteFunction", {2: ("bound_inputs", "int32", R)})
register("SavedVariable", {
    1: ("dtype", "enum", O), 2: ("shape", "TensorShapeProto", O), 3: ("trainable", "bool", O),
    6: ("name", "string", O)})

# Checkpoint side: the object graph stored in the bundle under _CHECKPOINTABLE_OBJECT_GRAPH.
register("TrackableObjectGraph", {1: ("nodes", "TrackableObject", R)})
register("TrackableObject", {1: ("children", "ObjectReference", R), 2: ("attributes", "SerializedTensor", R)})
register("SerializedTensor", {1: ("name", "string", O), 2: ("full_name", "string", O),
                              3: ("checkpoint_key", "string", O)})

# Tensor bundle (variables.index values).
register("BundleHeaderProto", {1: ("num_shards", "int32", O), 2: ("endianness", "enum", O)})
register("BundleEntryProto", {
    1: ("dtype", "enum", O), 2: ("shape", "TensorShapeProto", O), 3: ("shard_id", "int32", O),
    4: ("offset", "int", O), 5: ("size", "int", O), 6: ("crc32c", "fixed32", O)})
