import Testing

@testable import FaceSocialServer

/// The transport's deadline policy, without sockets (the socket tests are in HardeningTests).
@Suite("Connection deadlines by phase")
struct ConnectionClockTests {
    @Test func aRequestCycleMovesThroughItsDeadlines() {
        var clock = ConnectionClock()
        #expect(ConnectionClock.initialDeadline == .idle)
        #expect(clock.isBetweenRequests)
        #expect(clock.bytesArrived() == .head)
        #expect(clock.bytesArrived() == nil, "more bytes of the same head keep its deadline")
        #expect(!clock.isBetweenRequests)
        #expect(clock.headArrived() == .body)
        #expect(clock.bytesArrived() == nil, "body bytes keep the body deadline")
        #expect(clock.bodyArrived() == ClockDeadline.none, "nothing times out an answer being computed")
        #expect(clock.bytesArrived() == nil, "a pipelined request waits its turn")
        #expect(clock.answerStarted() == .idle, "a client that stops reading is let go")
        #expect(clock.answerWritten() == .idle)
        #expect(clock.isBetweenRequests)
        #expect(clock.bytesArrived() == .head, "the next request's first byte starts its head deadline")
    }

    @Test func aPipelinedHeadThatWaitedStartsItsBodyDeadline() {
        var clock = ConnectionClock()
        _ = clock.bytesArrived()
        _ = clock.headArrived()
        _ = clock.bodyArrived()
        _ = clock.answerStarted()
        _ = clock.answerWritten()
        // The next head had arrived during the answer and is handed on at once.
        #expect(clock.headArrived() == .body)
        #expect(clock.phase == .readingBody)
    }
}

typealias ClockDeadline = ConnectionClock.Deadline
