import Testing

@testable import Coordinator

@Suite("HeartbeatInbox: the session streams whose heartbeat waits for the engine")
struct HeartbeatInboxTests {
    @Test("the first stream added asks for a drain; the engine takes them all, in order, until it finds none")
    func drains() {
        let inbox = HeartbeatInbox()
        let channels = (0..<3).map { _ in SessionChannel() }
        #expect(inbox.add(channels[0]), "nothing drains yet: the caller schedules a drain")
        #expect(!inbox.add(channels[1]), "a drain is scheduled: it will take this one")
        #expect(inbox.take().map(ObjectIdentifier.init) == channels[0...1].map(ObjectIdentifier.init))
        #expect(!inbox.add(channels[2]), "the drain runs until it finds the inbox empty")
        #expect(inbox.take().map(ObjectIdentifier.init) == [ObjectIdentifier(channels[2])])
        #expect(inbox.take().isEmpty)
        #expect(inbox.add(channels[0]), "the drain is over: the next one asks for another")
    }
}
