// The C boundary to ONNX Runtime. ORT's C API is one struct of function pointers (OrtApi), which
// Swift calls directly; this shim only fetches that struct for the header's API version, so the
// binary works with any newer library (the C API only grows).
#ifndef FS_ONNXRUNTIME_H
#define FS_ONNXRUNTIME_H

#include <onnxruntime_c_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// `OrtGetApiBase()->GetApi(ORT_API_VERSION)`: NULL when the library is older than the header.
const OrtApi* fs_ort_api(void);

/// The API version of the header this was compiled against.
uint32_t fs_ort_api_version(void);

/// The library's own version string (e.g. "1.31.1").
const char* fs_ort_library_version(void);

#ifdef __cplusplus
}
#endif
#endif
