import Foundation

/// Ends a child coordinator when the process that started it is gone.
///
/// `dtr bench swarm` runs its coordinator as a child process; if the benchmark is killed (`kill -9`, a CI timeout),
/// nothing would stop that child, and it would hold its ports and CPU until someone noticed. The child polls its
/// parent process id instead: once it changes (the parent died and the child was re-parented), it shuts down as on
/// SIGTERM. A poll rather than `PR_SET_PDEATHSIG`, which fires when the parent's spawning *thread* exits: a pool
/// thread of a Swift program may end while the process lives on.
enum ParentWatch {
    /// Returns once the parent process of this process is no longer `parent` (checked every `interval`), or when
    /// cancelled.
    static func waitUntilGone(parent: pid_t, interval: Duration = .milliseconds(250)) async {
        while !Task.isCancelled, !isGone(parent: parent) {
            try? await Task.sleep(for: interval)
        }
    }

    /// Whether the parent process of this process is no longer `parent` (or `parent` is 1: it was gone before).
    static func isGone(parent: pid_t) -> Bool {
        parent == 1 || getppid() != parent
    }
}
