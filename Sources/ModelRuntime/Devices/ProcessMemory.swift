internal import CAllocator
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

    /// Memory this process can have: the machine's (MemTotal, MemAvailable), or the memory cgroup's
    /// where its limit is smaller (a container's `--memory`), since that is where the kernel kills
    /// the process, however much the machine has. `cgroupLimit` is that limit, nil where none applies.
    public static func systemMemory() -> (total: Int, available: Int, cgroupLimit: Int?) {
        let fields = meminfo()
        let machine = (total: fields["MemTotal"] ?? 0, available: fields["MemAvailable"] ?? 0)
        guard let cgroup = cgroupMemory(), cgroup.limitBytes < machine.total else {
            return (machine.total, machine.available, nil)
        }
        let free = max(0, cgroup.limitBytes - cgroup.usedBytes)
        return (cgroup.limitBytes, min(machine.available, free), cgroup.limitBytes)
    }

    /// A memory cgroup's limit and what counts against it (usage less reclaimable file cache).
    public struct CgroupMemory: Sendable, Equatable {
        public var limitBytes: Int
        public var usedBytes: Int
    }

    /// The limit of this process's memory cgroup: v2 (`memory.max`, `memory.current`) or v1
    /// (`memory/memory.limit_in_bytes`, `usage_in_bytes`); nil when unlimited or not readable.
    public static func cgroupMemory(root: String = "/sys/fs/cgroup") -> CgroupMemory? {
        func read(_ path: String) -> String? { try? String(contentsOfFile: "\(root)/\(path)", encoding: .utf8) }
        if let limit = read("memory.max") {
            return parseCgroupMemory(limit: limit, usage: read("memory.current"), stat: read("memory.stat"))
        }
        return parseCgroupMemory(
            limit: read("memory/memory.limit_in_bytes"), usage: read("memory/memory.usage_in_bytes"),
            stat: read("memory/memory.stat"))
    }

    /// v2 writes `max` for no limit; v1 a number near 2^63 (rounded down to a page).
    static func parseCgroupMemory(limit: String?, usage: String?, stat: String?) -> CgroupMemory? {
        guard let text = limit?.trimmingCharacters(in: .whitespacesAndNewlines), let bytes = Int(text),
            bytes > 0, bytes < 1 << 60
        else { return nil }
        let used = usage.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        // Inactive file pages are reclaimed before the limit is enforced, as `docker stats` counts.
        var inactiveFile = 0
        for line in (stat ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == "inactive_file" || parts[0] == "total_inactive_file",
                let value = Int(parts[1])
            {
                inactiveFile = value
                if parts[0] == "total_inactive_file" { break }
            }
        }
        return CgroupMemory(limitBytes: bytes, usedBytes: max(0, used - inactiveFile))
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
