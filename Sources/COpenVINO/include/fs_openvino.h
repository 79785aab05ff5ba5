// The C boundary to OpenVINO. Swift cannot call C variadic functions, so the few variadic entry
// points (compile with properties, set core properties) are wrapped here with fixed signatures.
// Everything else is OpenVINO's own C API, re-exported from the wheel's headers.
#ifndef FS_OPENVINO_H
#define FS_OPENVINO_H

#include <openvino/c/openvino.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Compiles `model` for `device` with up to 8 string properties (keys[i] = values[i]).
ov_status_e fs_ov_compile_model(const ov_core_t* core, const ov_model_t* model, const char* device,
                                size_t count, const char* const* keys, const char* const* values,
                                ov_compiled_model_t** compiled);

/// Sets up to 8 string properties on a device of the core.
ov_status_e fs_ov_core_set_properties(const ov_core_t* core, const char* device, size_t count,
                                      const char* const* keys, const char* const* values);

/// Reads a port's partial shape into `dims` (dynamic dimensions as -1). Returns the rank in
/// `rank`; fails with OUT_OF_BOUNDS when the rank exceeds `capacity` or is dynamic.
ov_status_e fs_ov_port_dims(const ov_output_const_port_t* port, int64_t* dims, size_t capacity,
                            size_t* rank);

/// Reshapes the input at `index` to the static shape `dims`.
ov_status_e fs_ov_reshape_input(const ov_model_t* model, size_t index, const int64_t* dims,
                                size_t rank);

/// Reshapes the input at `index` to a shape whose dimension i lies in mins[i]…maxs[i] (equal
/// bounds make it static): a dynamic batch for the micro-batcher, or a dynamic height and width.
ov_status_e fs_ov_reshape_input_bounds(const ov_model_t* model, size_t index, const int64_t* mins,
                                       const int64_t* maxs, size_t rank);

/// Reads a tensor's shape into `dims`; returns the rank in `rank`.
ov_status_e fs_ov_tensor_dims(const ov_tensor_t* tensor, int64_t* dims, size_t capacity,
                              size_t* rank);

/// Creates a float32 tensor over caller-owned memory (no copy).
ov_status_e fs_ov_tensor_f32(const int64_t* dims, size_t rank, float* data, ov_tensor_t** tensor);

#ifdef __cplusplus
}
#endif
#endif
