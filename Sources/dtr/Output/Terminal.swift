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
    /// Writes `text` to standard output.
    static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes `text` to standard error.
    static func writeError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
