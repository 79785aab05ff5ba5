import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// NVIDIA GPUs through NVML, loaded at run time (libnvidia-ml.so.1 ships with the driver, so a
/// machine without one simply reports NVML as unavailable). NVML reads device memory as the driver
/// sees it: total, used and free, including what other processes use while inference runs.
public final class NVML: @unchecked Sendable {
    // Immutable after init; NVML itself is thread-safe.
    public struct GPU: Sendable, Codable, Equatable {
        public var index: Int
        public var name: String
        public var totalBytes: Int
        public var usedBytes: Int
        public var freeBytes: Int
    }

    // nvmlReturn_t is an int enum (0 = success); nvmlDevice_t an opaque pointer; nvmlMemory_t
    // three unsigned long longs: total, free, used.
    private struct Memory {
        var total: UInt64 = 0
        var free: UInt64 = 0
        var used: UInt64 = 0
    }
    private typealias InitFn = @convention(c) () -> Int32
    private typealias CountFn = @convention(c) (UnsafeMutablePointer<UInt32>) -> Int32
    private typealias HandleFn = @convention(c) (UInt32, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private typealias MemoryFn = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer) -> Int32
    private typealias NameFn = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>, UInt32) -> Int32
    private typealias ShutdownFn = @convention(c) () -> Int32

    private let library: UnsafeMutableRawPointer
    private let count: CountFn
    private let handle: HandleFn
    private let memory: MemoryFn
    private let name: NameFn
    private let shutdown: ShutdownFn

    /// Why NVML could not be used, when it could not.
    public enum Unavailable: Error, CustomStringConvertible, Sendable {
        case library(String)
        case symbol(String)
        case call(String, Int32)

        public var description: String {
            switch self {
            case .library(let why): "libnvidia-ml.so.1 not loadable: \(why)"
            case .symbol(let name): "libnvidia-ml.so.1 lacks \(name)"
            case .call(let function, let code): "\(function) returned NVML error \(code)"
            }
        }
    }

    public init(libraryName: String = "libnvidia-ml.so.1") throws(Unavailable) {
        guard let library = dlopen(libraryName, RTLD_NOW | RTLD_LOCAL) else {
            throw .library(dlerror().map { String(cString: $0) } ?? "unknown")
        }
        func symbol<T>(_ name: String, as: T.Type) throws(Unavailable) -> T {
            guard let pointer = dlsym(library, name) else {
                dlclose(library)
                throw .symbol(name)
            }
            return unsafeBitCast(pointer, to: T.self)
        }
        let initialise = try symbol("nvmlInit_v2", as: InitFn.self)
        count = try symbol("nvmlDeviceGetCount_v2", as: CountFn.self)
        handle = try symbol("nvmlDeviceGetHandleByIndex_v2", as: HandleFn.self)
        memory = try symbol("nvmlDeviceGetMemoryInfo", as: MemoryFn.self)
        name = try symbol("nvmlDeviceGetName", as: NameFn.self)
        shutdown = try symbol("nvmlShutdown", as: ShutdownFn.self)
        let status = initialise()
        guard status == 0 else {
            dlclose(library)
            throw .call("nvmlInit_v2", status)
        }
        self.library = library
    }

    deinit {
        _ = shutdown()
        dlclose(library)
    }

    /// Every GPU with its memory right now.
    public func gpus() throws(Unavailable) -> [GPU] {
        var n: UInt32 = 0
        let status = count(&n)
        guard status == 0 else { throw .call("nvmlDeviceGetCount_v2", status) }
        var result: [GPU] = []
        for index in 0..<n {
            var device: OpaquePointer?
            let found = handle(index, &device)
            guard found == 0 else { throw .call("nvmlDeviceGetHandleByIndex_v2", found) }
            var info = Memory()
            let read = withUnsafeMutableBytes(of: &info) { memory(device, $0.baseAddress!) }
            guard read == 0 else { throw .call("nvmlDeviceGetMemoryInfo", read) }
            var buffer = [CChar](repeating: 0, count: 96)
            let named = name(device, &buffer, UInt32(buffer.count))
            let label = named == 0 ? String(cString: buffer) : "NVIDIA GPU \(index)"
            result.append(
                GPU(
                    index: Int(index), name: label, totalBytes: Int(info.total), usedBytes: Int(info.used),
                    freeBytes: Int(info.free)))
        }
        return result
    }
}
