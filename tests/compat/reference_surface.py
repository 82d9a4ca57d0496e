"""The public names and parameters of torch_to_nnef 0.24 (read from its 0.24.12 wheel), which
fx2nnef keeps so that a user switches by changing the import."""

MODULE_NAMES = ["export_model_to_nnef", "export_tensors_to_nnef", "export_tensors_from_disk_to_nnef",
                "TractNNEF", "KhronosNNEF"]

EXPORT_MODEL_TO_NNEF = [
    "model", "args", "file_path_export", "inference_target", "input_names", "output_names", "compression_level",
    "log_level", "nnef_variable_naming_scheme", "check_io_names_qte_match", "debug_bundle_path",
    "custom_extensions", "allow_same_io_names", "auto_harden_jit", "load_extra_op_modules",
    "discover_extra_entrypoints", "strict_extra_imports", "skip_eager_forward",
]

EXPORT_TENSORS_TO_NNEF = ["name_to_torch_tensors", "output_dir"]
EXPORT_TENSORS_FROM_DISK_TO_NNEF = ["store_filepath", "output_dir", "filter_key", "fn_check_found_tensors",
                                    "map_location"]

TRACT_NNEF = [
    "version", "feature_flags", "check_io", "dynamic_axes", "specific_tract_binary_path", "check_io_tolerance",
    "specific_properties", "dump_identity_properties", "force_attention_inner_in_f32",
    "force_linear_accumulation_in_f32", "force_norm_in_f32", "reify_sdpa_operator",
    "upcast_reified_sdpa_inputs_to_f32", "upsample_with_debox", "native_gated_delta_op",
]
TRACT_NNEF_METHODS = ["latest", "latest_version", "with_dynamic_axes", "with_check_io_tolerance",
                      "with_specific_properties"]
KHRONOS_NNEF = ["version", "check_io"]

TRACT_CHECK_TOLERANCE = {"EXACT": "exact", "APPROXIMATE": "approximate", "CLOSE": "close", "VERY": "very",
                         "SUPER": "super", "ULTRA": "ultra"}
NAMING_SCHEMES = ["raw", "natural_verbose", "natural_verbose_camel", "numeric"]
