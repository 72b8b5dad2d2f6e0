public import ServiceLifecycle

/// Runs the event bus: keep-alive comments on every stream, and at shutdown the end of every stream, so that the HTTP
/// server's graceful shutdown (which waits for responses in flight) is not held by open event streams. It comes after
/// the HTTP server in the group, so it shuts down before it.
public struct EventBusService: Service {
    let bus: EventBus
    /// The log buffer whose entries become `log` events, and the observer that publishes them.
    let logs: LogBuffer
    let observer: UInt64

    public func run() async {
        let interval = bus.configuration.keepAliveInterval
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                bus.keepAlive()
            }
        }
        logs.stopObserving(observer)
        await bus.close()
    }
}
