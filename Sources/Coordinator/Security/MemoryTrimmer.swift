import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Gives memory the process freed back to the system, after a burst of large buffers (half-sent gRPC messages, see
/// ``InboundBudget``) was released.
///
/// glibc keeps what `free` returns in its arenas for reuse: after clients sent hundreds of megabytes of messages and
/// went away, the process would keep that much resident for good. `malloc_trim(0)` hands the free pages of every arena
/// back. It can take milliseconds on a big heap, so it never runs on the caller's thread (an event loop): it runs on a
/// utility queue, `delay` after the request (by then the transport has dropped the streams' buffers too), at most
/// once per `minimumInterval` (requests meanwhile fold into the one scheduled). A no-op where glibc is absent.
final class MemoryTrimmer: Sendable {
    /// How long after a request the trim runs.
    let delay: Duration
    /// The least time between two trims.
    let minimumInterval: Duration

    private struct State {
        var scheduled = false
        var last: ContinuousClock.Instant?
        var trims = 0
    }

    private let state = Mutex(State())

    /// A trimmer that trims `delay` after a request, at most once per `minimumInterval`.
    init(delay: Duration = .milliseconds(500), minimumInterval: Duration = .seconds(5)) {
        self.delay = delay
        self.minimumInterval = minimumInterval
    }

    /// Trims soon, unless a trim is already scheduled. Cheap: callable from an event loop.
    func request() {
        let wait: Duration? = state.withLock { state in
            guard !state.scheduled else { return nil }
            state.scheduled = true
            let now = ContinuousClock.now
            let earliest = state.last.map { $0 + minimumInterval } ?? now
            return max(delay, earliest - now)
        }
        guard let wait else { return }
        let nanoseconds =
            Int(wait.components.seconds) * 1_000_000_000 + Int(wait.components.attoseconds / 1_000_000_000)
        DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) {
            self.trim()
        }
    }

    /// How many trims ran (for tests).
    var trims: Int { state.withLock { $0.trims } }

    /// glibc's `malloc_trim`, looked up at run time: `<malloc.h>` is not part of Swift's Glibc module.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
            guard let symbol = dlsym(dlopen(nil, RTLD_LAZY), "malloc_trim") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
            return nil
        #endif
    }()

    private func trim() {
        _ = Self.mallocTrim?(0)
        state.withLock { state in
            state.scheduled = false
            state.last = ContinuousClock.now
            state.trims += 1
        }
    }
}
