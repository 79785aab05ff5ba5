/// Which deadline a connection is under, by where it stands in its request cycle. Plain policy:
/// the connection handler arms the timer this names and cancels the previous one.
///
/// Each phase has its own bound, so a slow client is let go however it is slow, and nothing
/// times out an answer that is still being computed (the queue and statement timeouts bound it):
/// - waiting for a request (a new connection, a keep-alive between requests): `idle`;
/// - from the first byte of a request until its head is complete: `head`, a deadline for the head
///   as a whole, however slowly it trickles;
/// - from the head until the body's end: `body`, a deadline for the body as a whole;
/// - while the answer is computed: none;
/// - while it is written: `idle` again, for a client that stops reading.
struct ConnectionClock: Sendable, Equatable {
    enum Phase: Sendable, Equatable {
        case waiting, readingHead, readingBody, answering, writing
    }
    enum Deadline: Sendable, Equatable {
        case idle, head, body, none
    }

    private(set) var phase: Phase = .waiting

    /// The deadline of a connection just accepted.
    static let initialDeadline = Deadline.idle

    /// Bytes arrived. Only the first bytes of a request start its head deadline; bytes of a
    /// pipelined request that arrive while one is answered wait their turn (nil: keep the timer).
    mutating func bytesArrived() -> Deadline? {
        guard phase == .waiting else { return nil }
        phase = .readingHead
        return .head
    }

    /// A whole head was parsed (also one that had waited behind a pipelined answer).
    mutating func headArrived() -> Deadline {
        phase = .readingBody
        return .body
    }

    /// The body's end arrived: the request is answered with no deadline of the server's own.
    mutating func bodyArrived() -> Deadline {
        phase = .answering
        return .none
    }

    /// The answer is being written.
    mutating func answerStarted() -> Deadline {
        phase = .writing
        return .idle
    }

    /// The answer was written and the connection is kept for the next request.
    mutating func answerWritten() -> Deadline {
        phase = .waiting
        return .idle
    }

    /// Whether the connection can be closed now without cutting a request short (graceful shutdown).
    var isBetweenRequests: Bool { phase == .waiting }
}
