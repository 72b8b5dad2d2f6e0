import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A loopback HTTP/1.1 server that answers each request with the next response of a script (the last one repeats):
/// the failures a real S3 server will not produce on demand (503 SlowDown, 500 InternalError), for retry tests.
///
/// One blocking thread, one connection at a time, `Connection: close` after every response: crude, and enough.
final class ScriptedHTTPServer: Sendable {
    /// A canned answer.
    struct Response: Sendable {
        var status: Int
        var body: String
    }

    /// The port it listens on.
    let port: Int
    private let listener: Int32
    private let state: Mutex<(script: [Response], requestLines: [String])>

    /// Starts listening on a free loopback port.
    init(script: [Response]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && getsockname(fd, generic, &length) == 0 && listen(fd, 16) == 0
            }
        }
        try #require(listening, "cannot listen on loopback: errno \(errno)")
        self.listener = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
        self.state = Mutex((script, []))
        Thread.detachNewThread { [self] in serve() }
    }

    /// The request lines received so far (`GET /bucket/key HTTP/1.1`).
    var requestLines: [String] {
        state.withLock { $0.requestLines }
    }

    /// Stops accepting (shutdown wakes the blocked accept) and releases the port.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            if let requestLine = readRequest(connection) {
                let response = state.withLock { state in
                    state.requestLines.append(requestLine)
                    return state.script.count > 1 ? state.script.removeFirst() : state.script[0]
                }
                let text =
                    "HTTP/1.1 \(response.status) Scripted\r\nContent-Type: application/xml\r\n"
                    + "Content-Length: \(response.body.utf8.count)\r\nConnection: close\r\n\r\n\(response.body)"
                let bytes = Array(text.utf8)
                _ = bytes.withUnsafeBytes { write(connection, $0.baseAddress!, $0.count) }
            }
            close(connection)
        }
    }

    /// Reads one request (head and `Content-Length` body) and returns its request line.
    private func readRequest(_ connection: Int32) -> String? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        func headEnd() -> Int? {
            guard received.count >= 4 else { return nil }
            return (0...(received.count - 4)).first { received[$0..<($0 + 4)].elementsEqual("\r\n\r\n".utf8) }
        }
        while true {
            if let end = headEnd() {
                let head = String(decoding: received[..<end], as: UTF8.self)
                let lines = head.components(separatedBy: "\r\n")
                let length =
                    lines.lazy.compactMap { line -> Int? in
                        let parts = line.split(separator: ":", maxSplits: 1)
                        guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                        return Int(parts[1].trimmingCharacters(in: .whitespaces))
                    }.first ?? 0
                if received.count >= end + 4 + length { return lines.first }
            }
            let count = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress!, $0.count) }
            guard count > 0 else { return nil }
            received += buffer[..<count]
        }
    }
}
