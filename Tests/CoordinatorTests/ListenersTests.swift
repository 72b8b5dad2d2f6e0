import Testing

@testable import Coordinator

@Suite("Listeners")
struct ListenersTests {
    @Test("every waiter learns the ports once both servers are bound (dtr serve's ready line and the demo swarm)")
    func severalWaiters() async throws {
        let listeners = Listeners(host: "127.0.0.1")
        async let first = listeners.waitUntilBound()
        async let second = listeners.waitUntilBound()
        listeners.grpcBound(port: 50051)
        listeners.httpBound(port: 51051)
        let ports = [await first, await second].map { $0.map { [$0.grpc, $0.http] } }
        #expect(ports == [[50051, 51051], [50051, 51051]])
        // A waiter that comes later gets them at once.
        #expect(await listeners.waitUntilBound().map { [$0.grpc, $0.http] } == [50051, 51051])
    }

    @Test("a cancelled waiter gets nil, whether it was parked or not yet")
    func cancelled() async {
        let listeners = Listeners(host: "127.0.0.1")
        let waiting = Task { await listeners.waitUntilBound() }
        waiting.cancel()
        #expect(await waiting.value == nil)
        listeners.grpcBound(port: 1)
        #expect(listeners.current.http == nil)
    }
}
