import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Sends signed S3 requests: signs each attempt anew, retries what may be retried, and turns failures into
/// ``StorageError``s that name the endpoint and what to check.
struct S3Client: Sendable {
    /// Where requests go.
    let endpoint: S3Endpoint
    /// Signs each attempt (the date changes between attempts).
    let signer: SigV4Signer
    /// Timeouts, retries, limits.
    let options: S3BlobStore.Options

    /// The client every S3 store shares. Not `HTTPClient.shared`: that one keeps retrying a refused connection until
    /// the request's deadline, so an S3 server that is down would cost the full timeout instead of failing fast
    /// into our own short retries; it also follows redirects, which would re-send signed requests elsewhere.
    ///
    /// A global, like `HTTPClient.shared`: it lives as long as the process, so it is never shut down.
    private static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.httpVersion = .http1Only
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(60))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }()

    /// Sends `request`, retrying idempotent ones after a 5xx, throttling or a transport failure.
    ///
    /// - Returns: the response, when it is a success or its status is in `request.tolerated`.
    /// - Throws: the mapped ``StorageError`` otherwise.
    func send(_ request: S3Request) async throws(StorageError) -> S3Response {
        var attempt = 0
        while true {
            attempt += 1
            let mayRetry = request.idempotent && attempt < options.maxAttempts
            let response: S3Response
            do {
                response = try await sendOnce(request)
            } catch let failure as HTTPClientError where failure == .cancelled {
                throw StorageError(.unavailable, "\(request.operation) on \(request.resource) was cancelled")
            } catch is CancellationError {
                throw StorageError(.unavailable, "\(request.operation) on \(request.resource) was cancelled")
            } catch {
                // An object over the size limit stays over it: only transport failures are worth another try.
                if mayRetry, !(error is NIOTooManyBytesError), await backOff(before: attempt + 1) { continue }
                throw transportError(error, request, attempts: attempt)
            }
            if (200..<300).contains(response.status) || request.tolerated.contains(response.status) {
                return response
            }
            let details = response.error!
            if details.isRetryable, mayRetry, await backOff(before: attempt + 1) { continue }
            throw details.storageError(context(request, attempts: attempt))
        }
    }

    /// What error messages name about `request`.
    func context(_ request: S3Request, attempts: Int = 1) -> S3ErrorDetails.Context {
        S3ErrorDetails.Context(
            endpoint: endpoint, accessKeyID: signer.credentials.accessKeyID, operation: request.operation,
            bucket: request.bucket, resource: request.resource, attempts: attempts)
    }

    // MARK: One attempt

    private func sendOnce(_ request: S3Request) async throws -> S3Response {
        let payloadHash = SigV4Signer.hash(request.body)
        let signature = signer.sign(
            method: request.method, path: request.path, query: request.query,
            headers: [("host", endpoint.authority)] + request.headers, payloadHash: payloadHash, date: Date())

        var url = endpoint.url + SigV4Signer.encodePath(request.path)
        if !request.query.isEmpty {
            // A flag parameter goes out bare (`?uploads`, `?delete`): some servers route on that exact form.
            url +=
                "?"
                + request.query.map { name, value in
                    let encodedName = SigV4Signer.encode(name, keepingSlash: false)
                    return value.isEmpty
                        ? encodedName : encodedName + "=" + SigV4Signer.encode(value, keepingSlash: false)
                }.joined(separator: "&")
        }
        var http = HTTPClientRequest(url: url)
        http.method = HTTPMethod(rawValue: request.method)
        for header in signature.headers { http.headers.replaceOrAdd(name: header.name, value: header.value) }
        if !request.body.isEmpty || request.method == "PUT" || request.method == "POST" {
            http.body = .bytes(request.body)
        }

        let response = try await Self.http.execute(http, timeout: .nanoseconds(options.requestTimeout.nanoseconds))
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        let limit = request.method == "HEAD" ? 0 : options.maxResponseBytes
        let body = try await response.body.collect(upTo: limit)
        return S3Response(status: Int(response.status.code), headers: headers, body: Array(buffer: body))
    }

    /// Sleeps before attempt `next` (exponential with jitter); false when the task was cancelled meanwhile.
    private func backOff(before next: Int) async -> Bool {
        let base = options.retryBaseDelay.nanoseconds << Int64(min(next - 2, 10))
        let jittered = Int64.random(in: base / 2...base)
        do {
            try await Task.sleep(for: .nanoseconds(jittered))
            return true
        } catch {
            return false
        }
    }

    // MARK: Transport failures

    private func transportError(_ error: any Error, _ request: S3Request, attempts count: Int) -> StorageError {
        let attempts = count > 1 ? " (\(count) attempts)" : ""
        if let failure = error as? HTTPClientError,
            [.deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout].contains(failure)
        {
            return StorageError(
                .unavailable,
                "S3 endpoint \(endpoint.url) did not answer \(request.operation) on \(request.resource) in time"
                    + "\(attempts): is it reachable from the coordinator? check --checkpoint-s3-endpoint")
        }
        if error is NIOTooManyBytesError {
            return StorageError(
                .resourceExhausted,
                "\(request.resource) is larger than the \(options.maxResponseBytes)-byte limit for one read")
        }
        return StorageError(
            .unavailable,
            "S3 endpoint \(endpoint.url) unreachable (\(Self.reason(error)))\(attempts): is the server running? "
                + "check --checkpoint-s3-endpoint")
    }

    /// The root cause of a connection failure in a few words ("Connection refused") rather than NIO's full dump.
    private static func reason(_ error: any Error) -> String {
        if let failure = error as? NIOConnectionError {
            if let first = failure.connectionErrors.first { return reason(first.error) }
            if let dns = failure.dnsAError ?? failure.dnsAAAAError { return "cannot resolve \(failure.host): \(dns)" }
        }
        if let failure = error as? IOError { return String(cString: strerror(failure.errnoCode)) }
        return String(describing: error)
    }
}
