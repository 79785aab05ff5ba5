#include "fs_onnxruntime.h"

const OrtApi* fs_ort_api(void) { return OrtGetApiBase()->GetApi(ORT_API_VERSION); }

uint32_t fs_ort_api_version(void) { return ORT_API_VERSION; }

const char* fs_ort_library_version(void) { return OrtGetApiBase()->GetVersionString(); }
