import Foundation
import Synchronization

/// A coordinator run under valgrind's callgrind (`dtr bench swarm heartbeat --callgrind DIR`): the instructions it
/// executes, which repeat within a few per cent from run to run (its CPU time on a shared machine moves 10–20 %), and
/// within about 1 % for the engine's functions (`bench/callgrind_breakdown.py`).
///
/// Each reading asks callgrind to write a profile (`callgrind_control --dump`), whose summary is the instructions
/// since the reading before; the profiles stay in the directory for `callgrind_annotate`, valgrind's own messages in
/// `valgrind.<pid>.log` there. Under callgrind the coordinator runs some 30 to 50 times slower, on one thread at a
/// time: a few hundred workers, not thousands.
final class Callgrind: Sendable {
    /// Where the profiles go: `callgrind.out.<pid>.<n>` for the n-th reading, `callgrind.out.<pid>` at exit.
    let directory: String
    private let pid: Int32
    private let state = Mutex(State())

    private struct State {
        /// Profiles read so far, and their instructions in all.
        var profiles = 0
        var instructions = 0
        /// Why a reading failed: the readings after it give nothing, since their sums would be wrong.
        var failure: String?
    }

    init(directory: String, pid: Int32) {
        self.directory = directory
        self.pid = pid
    }

    /// The command that runs `executable` with `arguments` under callgrind, writing its profiles to `directory` (an
    /// absolute path), and the library to preload. Two workarounds for valgrind 3.19 (Debian 12's):
    /// - it gives up on the DWARF 5 debug information Swift writes, so the command runs a copy of `executable`
    ///   without it (`objcopy --strip-debug`; the symbol table, which the profiles need, stays), removed with
    ///   ``removeCopy(in:)``;
    /// - it crashes on Swift's async `main`, where libdispatch parks the main thread in `sigsuspend` with a mask in
    ///   read-only memory, which valgrind writes to: a shim, compiled here, copies the mask to the stack first.
    static func command(running executable: URL, _ arguments: [String], directory: String) throws
        -> (executable: URL, arguments: [String], preload: String)
    {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard (try? run("valgrind", ["--version"]).status) == 0 else {
            throw BenchFailure(
                "--callgrind runs the coordinator under valgrind, which is not installed: apt-get install valgrind")
        }
        let source = directory + "/sigsuspend-shim.c"
        let shim = directory + "/sigsuspend-shim.so"
        try sigsuspendShim.write(toFile: source, atomically: true, encoding: .utf8)
        guard (try? run("cc", ["-shared", "-fPIC", "-O2", "-o", shim, source]).status) == 0 else {
            throw BenchFailure(
                "--callgrind compiles a small C shim and found no working C compiler: apt-get install gcc")
        }
        let stripped = copy(in: directory)
        guard (try? run("objcopy", ["--strip-debug", executable.path, stripped]).status) == 0 else {
            removeCopy(in: directory)
            throw BenchFailure(
                "--callgrind could not copy \(executable.path) without its debug information with objcopy: "
                    + "apt-get install binutils, and check that \(directory) is writable")
        }
        let valgrind = [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=\(directory)/callgrind.out.%p",
            "--log-file=\(directory)/valgrind.%p.log", stripped,
        ]
        return (URL(fileURLWithPath: "/usr/bin/env"), valgrind + arguments, shim)
    }

    /// Removes the coordinator's stripped copy from `directory` (the profiles stay).
    static func removeCopy(in directory: String) {
        try? FileManager.default.removeItem(atPath: copy(in: directory))
    }

    /// Instructions the coordinator executed since it started (while the readings go on), and the profile this
    /// reading wrote; nil when callgrind wrote none (``failure`` says why), and for every reading after that.
    func reading() -> (instructions: Int, profile: String)? {
        state.withLock { state in
            guard state.failure == nil else { return nil }
            let part = state.profiles + 1
            let profile = "\(directory)/callgrind.out.\(pid).\(part)"
            // callgrind_control exits 0 even when it found no such process: the profile's header is the proof.
            let dump = try? Self.run("callgrind_control", ["--dump", String(pid)], timeout: .seconds(60))
            let header = Self.header(of: profile)
            guard header["pid"] == String(pid), header["part"] == String(part),
                let instructions = header["summary"].flatMap({ Int($0) })
            else {
                state.failure =
                    "`callgrind_control --dump \(pid)` wrote no \(profile)"
                    + (dump.map { ": \($0.output.trimmingCharacters(in: .whitespacesAndNewlines))" } ?? " (timed out)")
                return nil
            }
            state.profiles = part
            state.instructions += instructions
            return (state.instructions, profile)
        }
    }

    /// Why a reading failed, if one did.
    var failure: String? { state.withLock { $0.failure } }

    // MARK: Internals

    private static func copy(in directory: String) -> String { directory + "/dtr-under-callgrind" }

    /// The `key: value` lines of a profile's header (up to its `summary:` line), empty without the file.
    private static func header(of profile: String) -> [String: String] {
        guard let file = FileHandle(forReadingAtPath: profile) else { return [:] }
        defer { try? file.close() }
        let head = String(decoding: (try? file.read(upToCount: 16_384)) ?? Data(), as: UTF8.self)
        var fields: [String: String] = [:]
        for line in head.split(separator: "\n") {
            let pair = line.split(separator: ":", maxSplits: 1)
            guard pair.count == 2 else { continue }
            fields[String(pair[0])] = pair[1].trimmingCharacters(in: .whitespaces)
            if pair[0] == "summary" { break }
        }
        return fields
    }

    /// Runs `command` (looked up on PATH), and returns its exit status and its output (standard output and error);
    /// one still running after `timeout` is ended, and throws.
    private static func run(_ command: String, _ arguments: [String], timeout: Duration = .seconds(120)) throws
        -> (status: Int32, output: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [command] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        // Read while it runs, so that it never blocks on a full pipe.
        let handle = pipe.fileHandleForReading
        let output = Shared(Data())
        let read = DispatchSemaphore(value: 0)
        Thread {
            let data = handle.readDataToEndOfFile()
            output.withLock { $0 = data }
            read.signal()
        }.start()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                throw BenchFailure("`\(command)` did not finish within \(timeout)")
            }
            usleep(10_000)
        }
        _ = read.wait(timeout: .now() + 5)
        return (process.terminationStatus, String(decoding: output.value, as: UTF8.self))
    }

    /// `sigsuspend` with the mask copied to the stack first.
    private static let sigsuspendShim = """
        #define _GNU_SOURCE
        #include <signal.h>
        #include <sys/syscall.h>
        #include <unistd.h>
        int sigsuspend(const sigset_t *mask) {
            sigset_t copy = *mask;
            return (int)syscall(SYS_rt_sigsuspend, &copy, 8);
        }
        """
}
