import CAllocator
import Foundation

/// The process's own memory, read from /proc: what CPU footprints are measured with.
public enum ProcessMemory {
    /// Resident set size in bytes (/proc/self/statm, second field, in pages).
    public static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Peak resident set size in bytes (VmHWM).
    public static func peakResidentBytes() -> Int { statusField("VmHWM") ?? 0 }

    /// Physical memory of the machine (MemTotal) and what the kernel could give us (MemAvailable).
    public static func systemMemory() -> (total: Int, available: Int) {
        let fields = meminfo()
        return (fields["MemTotal"] ?? 0, fields["MemAvailable"] ?? 0)
    }

    /// Gives freed heap pages back to the kernel. glibc keeps freed memory in its arenas, so without
    /// this an unloaded model's memory would stay in the RSS and the drop would not show.
    @discardableResult
    public static func trim() -> Bool {
        fs_malloc_trim() != 0
    }

    /// Caps glibc's malloc arenas (default 8 per core) unless `MALLOC_ARENA_MAX` is set, in which
    /// case glibc has applied it already. Under bursts every new thread (event loops, the blocking
    /// pool, Dispatch workers running inferences) may take an arena of its own, and each keeps its
    /// high-water mark in pieces a trim cannot return: with the default, RSS stepped up after each
    /// burst of the soak test. Returns the cap in force, or nil when glibc's default stands.
    @discardableResult
    public static func limitArenas(_ count: Int, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> Int?
    {
        if let set = environment["MALLOC_ARENA_MAX"] { return Int(set) }
        return fs_limit_arenas(Int32(count)) == 1 ? count : nil
    }

    /// glibc allocator statistics (mallinfo2), in bytes.
    public struct AllocatorStatistics: Sendable, Codable, Equatable {
        public var arenaBytes: Int
        public var inUseBytes: Int
        public var freeBytes: Int
        public var mmapBytes: Int
        public var releasableBytes: Int

        enum CodingKeys: String, CodingKey {
            case arenaBytes = "arena_bytes"
            case inUseBytes = "in_use_bytes"
            case freeBytes = "free_bytes"
            case mmapBytes = "mmap_bytes"
            case releasableBytes = "releasable_bytes"
        }
    }

    public static func allocatorStatistics() -> AllocatorStatistics? {
        var raw = [size_t](repeating: 0, count: 5)
        guard fs_mallinfo(&raw) == 0 else { return nil }
        let values = raw.map { Int($0) }
        return AllocatorStatistics(
            arenaBytes: values[0], inUseBytes: values[1], freeBytes: values[2], mmapBytes: values[3],
            releasableBytes: values[4])
    }

    private static func statusField(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        return kilobyteFields(text)[name]
    }

    private static func meminfo() -> [String: Int] {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return [:] }
        return kilobyteFields(text)
    }

    /// Parses "Name:   1234 kB" lines into bytes.
    static func kilobyteFields(_ text: String) -> [String: Int] {
        var fields: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let number = value.first.flatMap({ Int($0) }) else { continue }
            fields[String(parts[0])] = value.count > 1 && value[1] == "kB" ? number * 1024 : number
        }
        return fields
    }
}
