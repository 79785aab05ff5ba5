import Foundation
import Testing

@testable import ModelRuntime

/// The CPU device's memory inside a container: the memory cgroup's limit, not the machine's RAM.
@Suite struct CgroupMemoryTests {
    @Test func unlimitedCgroupsAreNoLimit() {
        #expect(ProcessMemory.parseCgroupMemory(limit: "max\n", usage: "123", stat: nil) == nil)
        #expect(ProcessMemory.parseCgroupMemory(limit: "9223372036854771712\n", usage: "123", stat: nil) == nil)
        #expect(ProcessMemory.parseCgroupMemory(limit: nil, usage: nil, stat: nil) == nil)
        #expect(ProcessMemory.parseCgroupMemory(limit: "garbage", usage: "1", stat: nil) == nil)
    }

    @Test func aLimitCountsUsageLessInactiveFileCache() {
        let v2 = ProcessMemory.parseCgroupMemory(
            limit: "3221225472\n", usage: "1000000000\n", stat: "anon 700000000\ninactive_file 200000000\n")
        #expect(v2 == .init(limitBytes: 3_221_225_472, usedBytes: 800_000_000))
        // v1 lists the cgroup's own and the hierarchy's counters; the hierarchy's is the one.
        let v1 = ProcessMemory.parseCgroupMemory(
            limit: "2147483648", usage: "500",
            stat: "inactive_file 100\ntotal_inactive_file 300\n")
        #expect(v1 == .init(limitBytes: 2_147_483_648, usedBytes: 200))
    }

    @Test func bothLayoutsAreReadFromTheirFiles() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let v2 = root.appendingPathComponent("v2")
        try FileManager.default.createDirectory(at: v2, withIntermediateDirectories: true)
        try "1073741824\n".write(to: v2.appendingPathComponent("memory.max"), atomically: true, encoding: .utf8)
        try "4096\n".write(to: v2.appendingPathComponent("memory.current"), atomically: true, encoding: .utf8)
        #expect(ProcessMemory.cgroupMemory(root: v2.path) == .init(limitBytes: 1_073_741_824, usedBytes: 4096))

        let v1 = root.appendingPathComponent("v1/memory")
        try FileManager.default.createDirectory(at: v1, withIntermediateDirectories: true)
        try "3221225472\n".write(
            to: v1.appendingPathComponent("memory.limit_in_bytes"), atomically: true, encoding: .utf8)
        try "8192\n".write(to: v1.appendingPathComponent("memory.usage_in_bytes"), atomically: true, encoding: .utf8)
        #expect(
            ProcessMemory.cgroupMemory(root: root.appendingPathComponent("v1").path)
                == .init(limitBytes: 3_221_225_472, usedBytes: 8192))
        #expect(ProcessMemory.cgroupMemory(root: root.appendingPathComponent("none").path) == nil)
    }

    @Test func theMachineReadingNeverExceedsTheMachine() {
        let memory = ProcessMemory.systemMemory()
        #expect(memory.total > 0 && memory.available <= memory.total)
        if let limit = memory.cgroupLimit { #expect(limit == memory.total) }
    }
}
