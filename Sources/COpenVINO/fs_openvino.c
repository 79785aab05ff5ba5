#include "fs_openvino.h"

#define K(i) keys[i], values[i]

ov_status_e fs_ov_compile_model(const ov_core_t* core, const ov_model_t* model, const char* device,
                                size_t count, const char* const* keys, const char* const* values,
                                ov_compiled_model_t** compiled) {
    // The variadic API takes the number of variadic arguments (two per property).
    switch (count) {
    case 0: return ov_core_compile_model(core, model, device, 0, compiled);
    case 1: return ov_core_compile_model(core, model, device, 2, compiled, K(0));
    case 2: return ov_core_compile_model(core, model, device, 4, compiled, K(0), K(1));
    case 3: return ov_core_compile_model(core, model, device, 6, compiled, K(0), K(1), K(2));
    case 4: return ov_core_compile_model(core, model, device, 8, compiled, K(0), K(1), K(2), K(3));
    case 5:
        return ov_core_compile_model(core, model, device, 10, compiled, K(0), K(1), K(2), K(3), K(4));
    case 6:
        return ov_core_compile_model(core, model, device, 12, compiled, K(0), K(1), K(2), K(3), K(4),
                                     K(5));
    case 7:
        return ov_core_compile_model(core, model, device, 14, compiled, K(0), K(1), K(2), K(3), K(4),
                                     K(5), K(6));
    case 8:
        return ov_core_compile_model(core, model, device, 16, compiled, K(0), K(1), K(2), K(3), K(4),
                                     K(5), K(6), K(7));
    default: return INVALID_C_PARAM;
    }
}

ov_status_e fs_ov_core_set_properties(const ov_core_t* core, const char* device, size_t count,
                                      const char* const* keys, const char* const* values) {
    ov_status_e status = OK;
    // One property per call keeps the variadic call shape fixed.
    for (size_t i = 0; i < count && status == OK; i++) {
        status = ov_core_set_property(core, device, keys[i], values[i]);
    }
    return status;
}

ov_status_e fs_ov_port_dims(const ov_output_const_port_t* port, int64_t* dims, size_t capacity,
                            size_t* rank) {
    ov_partial_shape_t shape;
    ov_status_e status = ov_port_get_partial_shape(port, &shape);
    if (status != OK) return status;
    if (ov_rank_is_dynamic(shape.rank) || (size_t)shape.rank.max > capacity) {
        ov_partial_shape_free(&shape);
        return OUT_OF_BOUNDS;
    }
    *rank = (size_t)shape.rank.max;
    for (size_t i = 0; i < *rank; i++) {
        ov_dimension_t d = shape.dims[i];
        dims[i] = (d.min == d.max) ? d.max : -1;
    }
    ov_partial_shape_free(&shape);
    return OK;
}

ov_status_e fs_ov_reshape_input(const ov_model_t* model, size_t index, const int64_t* dims,
                                size_t rank) {
    ov_partial_shape_t shape;
    ov_status_e status = ov_partial_shape_create_static((int64_t)rank, dims, &shape);
    if (status != OK) return status;
    size_t indexes[1] = {index};
    status = ov_model_reshape_by_port_indexes(model, indexes, &shape, 1);
    ov_partial_shape_free(&shape);
    return status;
}

ov_status_e fs_ov_tensor_dims(const ov_tensor_t* tensor, int64_t* dims, size_t capacity,
                              size_t* rank) {
    ov_shape_t shape;
    ov_status_e status = ov_tensor_get_shape(tensor, &shape);
    if (status != OK) return status;
    if ((size_t)shape.rank > capacity) {
        ov_shape_free(&shape);
        return OUT_OF_BOUNDS;
    }
    *rank = (size_t)shape.rank;
    for (size_t i = 0; i < *rank; i++) dims[i] = shape.dims[i];
    ov_shape_free(&shape);
    return OK;
}

ov_status_e fs_ov_tensor_f32(const int64_t* dims, size_t rank, float* data, ov_tensor_t** tensor) {
    ov_shape_t shape;
    ov_status_e status = ov_shape_create((int64_t)rank, dims, &shape);
    if (status != OK) return status;
    status = ov_tensor_create_from_host_ptr(F32, shape, data, tensor);
    ov_shape_free(&shape);
    return status;
}

ov_status_e fs_ov_reshape_input_bounds(const ov_model_t* model, size_t index, const int64_t* mins,
                                       const int64_t* maxs, size_t rank) {
    if (rank == 0 || rank > 8) return OUT_OF_BOUNDS;
    ov_dimension_t partial[8];
    for (size_t i = 0; i < rank; i++) {
        partial[i].min = mins[i];
        partial[i].max = maxs[i];
    }
    ov_partial_shape_t shape;
    ov_status_e status = ov_partial_shape_create((int64_t)rank, partial, &shape);
    if (status != OK) return status;
    size_t indexes[1] = {index};
    status = ov_model_reshape_by_port_indexes(model, indexes, &shape, 1);
    ov_partial_shape_free(&shape);
    return status;
}
