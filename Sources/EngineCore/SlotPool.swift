/// Hands out `count` numbered slots (infer requests) to concurrent callers; a caller with no free
/// slot waits in FIFO order instead of blocking a thread.
package actor SlotPool {
    private var free: [Int]
    private var waiters: [CheckedContinuation<Int, Never>] = []

    package init(count: Int) {
        free = Array((0..<count).reversed())
    }

    package func acquire() async -> Int {
        if let slot = free.popLast() { return slot }
        return await withCheckedContinuation { waiters.append($0) }
    }

    package func release(_ slot: Int) {
        if waiters.isEmpty {
            free.append(slot)
        } else {
            waiters.removeFirst().resume(returning: slot)
        }
    }

}
