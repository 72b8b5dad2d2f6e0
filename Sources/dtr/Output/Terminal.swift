import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Colours of table cells and log levels.
enum Colour: String, Sendable {
    case red = "31"
    case green = "32"
    case yellow = "33"
    case blue = "34"
    case dim = "2"
}

/// Whether output gets ANSI colours: only on a terminal, and never with `NO_COLOR` set (https://no-color.org) or
/// `TERM=dumb`, so that pipes, files and scripts get plain text.
struct Style: Sendable {
    /// Whether colours are written.
    var colour: Bool

    /// Plain text.
    static let plain = Style(colour: false)

    /// The style for standard output of this process.
    static func forStandardOutput(environment: [String: String] = ProcessInfo.processInfo.environment) -> Style {
        let disabled = environment["NO_COLOR"].map { !$0.isEmpty } ?? false || environment["TERM"] == "dumb"
        return Style(colour: !disabled && isatty(STDOUT_FILENO) == 1)
    }

    /// `text` in `colour`, or as it is when colours are off.
    func paint(_ text: String, _ colour: Colour?) -> String {
        guard self.colour, let colour, !text.isEmpty else { return text }
        return "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m"
    }
}

/// Writes to standard output and standard error without buffering, so a follower's lines reach a pipe at once.
enum Terminal {
    /// Writes `text` to standard output. When the reader has gone away (`dtr logs -f | head -1`), the process ends
    /// quietly with status 0: the reader has what it wanted. SIGPIPE cannot do that here: the process ignores it
    /// (NIO's sockets need that), so a failed write is seen as EPIPE instead.
    static func write(_ text: String) {
        if let failure = writeAll(text, to: STDOUT_FILENO) {
            if failure == EPIPE { exit(0) }
            writeError("Error: cannot write to standard output: \(String(cString: strerror(failure)))\n")
            exit(1)
        }
    }

    /// Writes `text` to standard error (failures are ignored: there is nowhere left to report them).
    static func writeError(_ text: String) {
        _ = writeAll(text, to: STDERR_FILENO)
    }

    /// Writes all of `text` to `descriptor`; the errno of a failure, or nil.
    private static func writeAll(_ text: String, to descriptor: Int32) -> Int32? {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { buffer in
                #if canImport(Glibc)
                    Glibc.write(descriptor, buffer.baseAddress, buffer.count)
                #elseif canImport(Musl)
                    Musl.write(descriptor, buffer.baseAddress, buffer.count)
                #elseif canImport(Darwin)
                    Darwin.write(descriptor, buffer.baseAddress, buffer.count)
                #endif
            }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            bytes = bytes.dropFirst(written)
        }
        return nil
    }
}
