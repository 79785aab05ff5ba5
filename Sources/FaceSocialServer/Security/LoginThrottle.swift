import Foundation
import Synchronization

/// Failed sign-ins per account and per client address, with a delay that grows with each failure
/// past the free ones. Plain policy (`delay(afterFailures:)`) over in-process state: each
/// instance counts its own, so behind N instances an attacker gets at most N times the budget.
public final class LoginThrottle: Sendable {
    public struct Policy: Sendable {
        /// Failures allowed before the first delay.
        public var freeFailures: Int
        /// The delay after the first failure past the free ones; it doubles with each further one.
        public var baseDelay: TimeInterval = 1
        public var maxDelay: TimeInterval = 900
        /// A key with no failure for this long starts again from zero.
        public var forgetAfter: TimeInterval = 900

        /// Seconds a key is locked after its `failures`-th failure.
        public func delay(afterFailures failures: Int) -> TimeInterval {
            guard failures >= freeFailures else { return 0 }
            let doublings = min(failures - freeFailures, 30)
            return min(maxDelay, baseDelay * pow(2, Double(doublings)))
        }
    }

    struct Entry {
        var failures: Int
        var lastFailure: Date
        var lockedUntil: Date
    }

    let account: Policy
    let address: Policy
    private let entries = Mutex<[String: Entry]>([:])

    public init(account: Policy, address: Policy) {
        self.account = account
        self.address = address
    }

    /// Seconds to wait before this account or address may try again, or nil when it may now.
    public func retryAfter(email: String, address ip: String, now: Date = Date()) -> Int? {
        entries.withLock { entries in
            let waits = ["account:\(email)", "address:\(ip)"].compactMap { key -> TimeInterval? in
                guard let entry = entries[key], entry.lockedUntil > now else { return nil }
                return entry.lockedUntil.timeIntervalSince(now)
            }
            return waits.max().map { max(1, Int($0.rounded(.up))) }
        }
    }

    public func failed(email: String, address ip: String, now: Date = Date()) {
        entries.withLock { entries in
            if entries.count > 100_000 {
                entries = entries.filter { now.timeIntervalSince($0.value.lastFailure) < account.forgetAfter }
            }
            for (key, policy) in [("account:\(email)", account), ("address:\(ip)", address)] {
                var entry = entries[key] ?? Entry(failures: 0, lastFailure: now, lockedUntil: .distantPast)
                if now.timeIntervalSince(entry.lastFailure) >= policy.forgetAfter { entry.failures = 0 }
                entry.failures += 1
                entry.lastFailure = now
                entry.lockedUntil = now.addingTimeInterval(policy.delay(afterFailures: entry.failures))
                entries[key] = entry
            }
        }
    }

    /// A successful sign-in clears the account's count (the address keeps its own).
    public func succeeded(email: String) {
        _ = entries.withLock { $0.removeValue(forKey: "account:\(email)") }
    }
}

/// At most `limit` password hashes at once, so sign-in floods cannot take every core from the
/// analysis routes; up to `limit * 4` more wait, and anyone beyond that is turned away at once.
public final class HashingGate: Sendable {
    enum Admission { case go, wait, full }

    struct State {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    public let limit: Int
    private let state = Mutex(State())

    public init(limit: Int) { self.limit = max(1, limit) }

    /// Runs `body` when a slot is free; false (and `body` not run) when the queue is full.
    public func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T? {
        let entry = state.withLock { state -> Admission in
            if state.running < limit {
                state.running += 1
                return .go
            }
            return state.waiting.count < limit * 4 ? .wait : .full
        }
        switch entry {
        case .full: return nil
        case .go: break
        case .wait:
            await withCheckedContinuation { continuation in
                let started = state.withLock { state -> Bool in
                    // A slot may have freed between the two locks.
                    if state.running < limit {
                        state.running += 1
                        return true
                    }
                    state.waiting.append(continuation)
                    return false
                }
                if started { continuation.resume() }
            }
        }
        defer {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if state.waiting.isEmpty {
                    state.running -= 1
                    return nil
                }
                return state.waiting.removeFirst()  // the slot passes to it; running stays
            }
            next?.resume()
        }
        return try await body()
    }
}
