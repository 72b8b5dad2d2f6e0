import Checkpoint
import Foundation
import RuntimeCore
import Testing

@testable import Storage

/// The S3 store's pure parts (error mapping, XML, names, endpoints, credentials) and its behaviour when no server
/// answers at all.
@Suite struct S3BlobStoreUnitTests {
    private let context = S3ErrorDetails.Context(
        endpoint: try! S3Endpoint(parsing: "http://127.0.0.1:8333"), accessKeyID: "AKEXAMPLE",
        operation: "PutObject", bucket: "ckpt", resource: "s3://ckpt/run/x", attempts: 4)

    // MARK: Error mapping

    @Test(arguments: [
        (
            403, "InvalidAccessKeyId", ErrorCode.unauthenticated,
            ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AKEXAMPLE"]
        ),
        (403, "SignatureDoesNotMatch", .unauthenticated, ["AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch"]),
        (400, "ExpiredToken", .unauthenticated, ["AWS_SESSION_TOKEN"]),
        (403, "AccessDenied", .permissionDenied, ["denied PutObject on s3://ckpt/run/x", "AKEXAMPLE"]),
        (404, "NoSuchBucket", .notFound, ["bucket ckpt does not exist at http://127.0.0.1:8333: create it"]),
        (404, "NoSuchKey", .notFound, ["s3://ckpt/run/x"]),
        (403, "RequestTimeTooSkewed", .failedPrecondition, ["clock"]),
        (400, "EntityTooLarge", .resourceExhausted, ["EntityTooLarge"]),
        (501, "NotImplemented", .unimplemented, ["PutObject"]),
        (500, "InternalError", .unavailable, ["after 4 attempts", "HTTP 500 InternalError: boom"]),
        (503, "SlowDown", .unavailable, ["SlowDown"]),
        (400, "MalformedXML", .failedPrecondition, ["HTTP 400 MalformedXML"]),
    ])
    func errorCodesMapToActionableErrors(status: Int, code: String, expected: ErrorCode, phrases: [String]) {
        let error = S3ErrorDetails(status: status, code: code, message: "boom").storageError(context)
        #expect(error.code == expected)
        for phrase in phrases { #expect(error.message.contains(phrase), "\(error.message)") }
    }

    @Test func onlyServerErrorsAndThrottlingAreRetried() {
        #expect(S3ErrorDetails(status: 500, code: "InternalError", message: "").isRetryable)
        #expect(S3ErrorDetails(status: 503, code: "SlowDown", message: "").isRetryable)
        #expect(S3ErrorDetails(status: 429, code: "TooManyRequests", message: "").isRetryable)
        #expect(!S3ErrorDetails(status: 403, code: "AccessDenied", message: "").isRetryable)
        #expect(!S3ErrorDetails(status: 404, code: "NoSuchKey", message: "").isRetryable)
    }

    @Test func errorResponsesAreReadFromTheBodyOrTheStatus() {
        let body = Array(
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>
            """.utf8)
        #expect(
            S3Response(status: 404, headers: [:], body: body).error
                == S3ErrorDetails(status: 404, code: "NoSuchBucket", message: "The specified bucket does not exist"))
        // HEAD: no body.
        #expect(S3Response(status: 403, headers: [:], body: []).error?.code == "Forbidden")
        #expect(S3Response(status: 200, headers: [:], body: body).error == nil)
    }

    // MARK: XML

    @Test func listingDocumentsParseIntoElements() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>ckpt</Name><IsTruncated>true</IsTruncated>
              <Contents><Key>run/a &amp; b</Key><Size>12</Size></Contents>
              <Contents><Key>run/c</Key><Size>0</Size></Contents>
              <NextContinuationToken>tok/en+=</NextContinuationToken>
            </ListBucketResult>
            """
        let root = try #require(S3XMLElement.parse(Array(xml.utf8)))
        #expect(root.name == "ListBucketResult")
        #expect(root["IsTruncated"] == "true")
        #expect(root.children("Contents").compactMap { $0["Key"] } == ["run/a & b", "run/c"])
        #expect(root.children("Contents").compactMap { $0["Size"] } == ["12", "0"])
        #expect(root["NextContinuationToken"] == "tok/en+=")
        #expect(root["Missing"] == nil)
        #expect(S3XMLElement.parse(Array("<Unclosed><A>".utf8)) == nil)
        #expect(S3XMLElement.parse([]) == nil)
    }

    @Test(arguments: [
        ("2024-05-01T12:00:00.000Z", 1_714_564_800.0),
        ("2024-05-01T12:00:00Z", 1_714_564_800.0),
        ("2024-05-01T12:00:00.500Z", 1_714_564_800.5),
    ])
    func timestampsParseWithAndWithoutFractions(text: String, seconds: Double) throws {
        let date = try #require(S3BlobStore.parseTimestamp(text))
        #expect(abs(date.timeIntervalSince1970 - seconds) < 0.001)
    }

    // MARK: Names and endpoints

    @Test(arguments: ["abc", "my-bucket", "dtr.checkpoints-01", String(repeating: "a", count: 63)])
    func validBucketNames(name: String) throws {
        #expect(try S3BucketName.validate(name) == name)
    }

    @Test(arguments: [
        ("ab", "3-63"), (String(repeating: "a", count: 64), "3-63"), ("My-Bucket", "lowercase"),
        ("my_bucket", "lowercase"), ("-bucket", "begin and end"), ("bucket-", "begin and end"),
        ("my..bucket", "adjacent periods"), ("192.168.5.4", "IP address"), ("xn--bucket", "reserved prefix"),
        ("bucket-s3alias", "reserved suffix"),
    ])
    func invalidBucketNames(name: String, rule: String) {
        let error = #expect(throws: StorageError.self) { try S3BucketName.validate(name) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(rule) == true)
    }

    @Test func endpointsParseAndPrintTheirAuthority() throws {
        #expect(try S3Endpoint(parsing: "http://127.0.0.1:8333").url == "http://127.0.0.1:8333")
        #expect(try S3Endpoint(parsing: "http://127.0.0.1:8333/").authority == "127.0.0.1:8333")
        #expect(try S3Endpoint(parsing: "https://s3.example.com:443").authority == "s3.example.com")
        #expect(try S3Endpoint(parsing: "HTTP://minio:80").url == "http://minio")
        #expect(try S3Endpoint(parsing: "http://[::1]:9000").authority == "[::1]:9000")
        #expect(S3Endpoint.aws(region: "eu-west-1").url == "https://s3.eu-west-1.amazonaws.com")
        for bad in ["127.0.0.1:8333", "ftp://host", "http://", "http://h/path", "http://h?x=1", "http://u:p@h"] {
            let error = #expect(throws: StorageError.self) { try S3Endpoint(parsing: bad) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("--checkpoint-s3-endpoint") == true)
        }
    }

    @Test func storeValidatesRegionAndPrefix() throws {
        let credentials = S3Credentials(accessKeyID: "a", secretAccessKey: "b")
        let store = try S3BlobStore(
            endpoint: nil, region: "eu-west-1", bucket: "ckpt", prefix: "runs/a/", credentials: credentials)
        #expect(store.location == BlobStoreLocation(uri: "s3://ckpt/runs/a", endpoint: "", region: "eu-west-1"))
        #expect(store.endpoint.url == "https://s3.eu-west-1.amazonaws.com")
        for (region, prefix) in [("", "p"), ("us east", "p"), ("us-east-1", "a//b"), ("us-east-1", "../x")] {
            let error = #expect(throws: StorageError.self) {
                try S3BlobStore(endpoint: nil, region: region, bucket: "ckpt", prefix: prefix, credentials: credentials)
            }
            #expect(error?.code == .invalidArgument)
        }
    }

    // MARK: Credentials

    @Test func credentialsComeFromTheAWSVariables() throws {
        let credentials = try S3Credentials.fromEnvironment([
            "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "TK",
        ])
        #expect(credentials == S3Credentials(accessKeyID: "AK", secretAccessKey: "SK", sessionToken: "TK"))
        #expect(
            try S3Credentials.fromEnvironment(["AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"]).sessionToken
                == nil)

        let error = #expect(throws: StorageError.self) {
            try S3Credentials.fromEnvironment(["AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": ""])
        }
        #expect(error?.code == .unauthenticated)
        #expect(error?.message.contains("set AWS_SECRET_ACCESS_KEY") == true)
    }

    @Test func credentialsNeverPrintTheirSecrets() {
        let credentials = S3Credentials(accessKeyID: "AKVISIBLE", secretAccessKey: "s3cr3t", sessionToken: "t0k3n")
        for text in [String(describing: credentials), String(reflecting: credentials), "\(credentials)"] {
            #expect(text.contains("AKVISIBLE"))
            #expect(!text.contains("s3cr3t"))
            #expect(!text.contains("t0k3n"))
        }
    }

    // MARK: No server

    @Test func unreachableEndpointIsUnavailableAndSaysWhatToCheck() async throws {
        // A port that was free a moment ago: nothing listens there.
        let port = try freeLoopbackPorts(1)[0]
        let store = try S3BlobStore(
            endpoint: S3Endpoint(parsing: "http://127.0.0.1:\(port)"), region: "us-east-1", bucket: "ckpt",
            credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"),
            options: S3BlobStore.Options(maxAttempts: 2, retryBaseDelay: .milliseconds(10)))
        let error = await #expect(throws: StorageError.self) { try await store.get(ObjectKey("t/x")) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("S3 endpoint http://127.0.0.1:\(port) unreachable") == true)
        #expect(error?.message.contains("Connection refused") == true)
        #expect(error?.message.contains("is the server running? check --checkpoint-s3-endpoint") == true)
    }

    // MARK: Retries (against a scripted server)

    private func store(on server: ScriptedHTTPServer, attempts: Int) throws -> S3BlobStore {
        try S3BlobStore(
            endpoint: S3Endpoint(parsing: "http://127.0.0.1:\(server.port)"), region: "us-east-1", bucket: "ckpt",
            credentials: S3Credentials(accessKeyID: "AK", secretAccessKey: "SK"),
            options: S3BlobStore.Options(maxAttempts: attempts, retryBaseDelay: .milliseconds(5)))
    }

    private static func s3Error(_ code: String) -> String {
        "<Error><Code>\(code)</Code><Message>scripted \(code)</Message></Error>"
    }

    @Test func serverErrorsAndThrottlingAreRetriedUntilSuccess() async throws {
        let server = try ScriptedHTTPServer(script: [
            .init(status: 503, body: Self.s3Error("SlowDown")),
            .init(status: 500, body: Self.s3Error("InternalError")),
            .init(status: 200, body: "manifest"),
        ])
        defer { server.stop() }
        let bytes = try await store(on: server, attempts: 4).get(ObjectKey("t/manifest.json"))
        #expect(bytes == Array("manifest".utf8))
        #expect(server.requestLines == Array(repeating: "GET /ckpt/t/manifest.json HTTP/1.1", count: 3))
    }

    @Test func persistentServerErrorsAreUnavailableAfterTheLastAttempt() async throws {
        let server = try ScriptedHTTPServer(script: [.init(status: 500, body: Self.s3Error("InternalError"))])
        defer { server.stop() }
        let error = await #expect(throws: StorageError.self) {
            try await store(on: server, attempts: 3).put(ObjectKey("t/x"), bytes: [1])
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("failed PutObject on s3://ckpt/t/x after 3 attempts") == true)
        #expect(error?.message.contains("HTTP 500 InternalError: scripted InternalError") == true)
        #expect(server.requestLines.count == 3)
    }

    @Test func clientErrorsAreNotRetried() async throws {
        let server = try ScriptedHTTPServer(script: [.init(status: 403, body: Self.s3Error("AccessDenied"))])
        defer { server.stop() }
        let error = await #expect(throws: StorageError.self) {
            try await store(on: server, attempts: 4).list(under: ObjectKey("t"))
        }
        #expect(error?.code == .permissionDenied)
        #expect(server.requestLines.count == 1)
    }

    @Test func objectsOverTheReadLimitAreRefusedNotRetried() async throws {
        let server = try ScriptedHTTPServer(script: [.init(status: 200, body: String(repeating: "x", count: 4096))])
        defer { server.stop() }
        let store = try S3BlobStore(
            endpoint: S3Endpoint(parsing: "http://127.0.0.1:\(server.port)"), region: "us-east-1", bucket: "ckpt",
            credentials: S3Credentials(accessKeyID: "AK", secretAccessKey: "SK"),
            options: S3BlobStore.Options(maxAttempts: 4, maxResponseBytes: 1024))
        let error = await #expect(throws: StorageError.self) { try await store.get(ObjectKey("t/huge.part")) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.contains("1024-byte limit") == true)
        #expect(server.requestLines.count == 1)
    }
}
