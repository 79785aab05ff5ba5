// The engine protocols and both engines belong to ModelRuntime's interface, so the layers above
// import ModelRuntime alone. The engines' C modules are imported `internal` in their own targets:
// their header paths reach no other target.
@_exported import EngineCore
@_exported import ONNXRuntimeBackend
@_exported import OpenVINOBackend
