public import Checkpoint
import Crypto
public import Foundation
import RuntimeCore

/// A checkpoint store in an S3 bucket (AWS or any S3-compatible server such as SeaweedFS or MinIO), under an optional
/// key prefix, addressed path-style (`<endpoint>/<bucket>/<prefix>/<key>`) and signed with SigV4.
///
/// - ``put(_:bytes:)`` is one `PutObject`: S3 makes a single PUT atomic, which suits manifests (workers upload the
///   big parts themselves, in multipart uploads).
/// - ``removeIncompleteWrites(under:startedBefore:)`` aborts the multipart uploads that workers started and never
///   completed, which S3 otherwise keeps (and bills) forever.
/// - Idempotent requests (all of the store's) are retried a few times after a 5xx, throttling or a broken
///   connection; then the error names the endpoint, S3's code and what to check.
public struct S3BlobStore: BlobStore {
    /// The bucket.
    public let bucket: String
    /// The key prefix inside the bucket (no leading or trailing `/`), or empty for the whole bucket.
    public let prefix: String
    /// The endpoint requests go to.
    public let endpoint: S3Endpoint
    /// The signing region.
    public let region: String
    /// What workers are told.
    public let location: BlobStoreLocation
    private let client: S3Client

    /// Opens a store. Nothing is sent until the first call.
    ///
    /// - Parameters:
    ///   - endpoint: the S3 API's URL; nil for AWS's regional endpoint (`https://s3.<region>.amazonaws.com`), which
    ///     workers then find by themselves (the location's endpoint stays empty).
    ///   - region: the signing region (`us-east-1` for most S3-compatible servers).
    ///   - bucket: a valid S3 bucket name.
    ///   - prefix: empty, or a valid ``ObjectKey`` under which every key lives (a trailing `/` is dropped).
    ///   - credentials: the keys that sign requests.
    ///   - options: timeouts, retries and limits.
    /// - Throws: `invalidArgument` for a bad region, bucket or prefix.
    public init(
        endpoint: S3Endpoint?, region: String, bucket: String, prefix: String = "", credentials: S3Credentials,
        options: Options = Options()
    ) throws(StorageError) {
        try S3BucketName.validate(bucket)
        let regionBytes = region.utf8
        guard (1...64).contains(regionBytes.count),
            regionBytes.allSatisfy({ Validation.isNameByte($0) && $0 != UInt8(ascii: ".") })
        else {
            throw StorageError(
                .invalidArgument,
                "--checkpoint-s3-region must be 1-64 characters of [A-Za-z0-9_-] (got \(Validation.quoted(region)))")
        }
        let trimmed = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        if !trimmed.isEmpty {
            do {
                _ = try ObjectKey(trimmed, field: "S3 key prefix")
            } catch {
                throw StorageError(.invalidArgument, error.message)
            }
        }
        self.bucket = bucket
        self.prefix = trimmed
        self.region = region
        self.endpoint = endpoint ?? .aws(region: region)
        self.location = BlobStoreLocation(
            uri: trimmed.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(trimmed)", endpoint: endpoint?.url ?? "",
            region: region)
        self.client = S3Client(
            endpoint: self.endpoint, signer: SigV4Signer(credentials: credentials, region: region), options: options)
    }

    // MARK: BlobStore

    /// Uploads the object in one `PutObject` (atomic on S3), with a `Content-MD5` the server verifies.
    public func put(_ key: ObjectKey, bytes: [UInt8]) async throws(StorageError) {
        _ = try await client.send(
            S3Request(
                operation: "PutObject", method: "PUT", bucket: bucket, key: objectName(key),
                headers: [
                    ("content-md5", Self.contentMD5(bytes)), ("content-type", "application/octet-stream"),
                ],
                body: bytes))
    }

    /// Downloads an object (up to ``Options/maxResponseBytes``).
    ///
    /// - Throws: `notFound` when there is no such object, or no such bucket (the message says which).
    public func get(_ key: ObjectKey) async throws(StorageError) -> [UInt8] {
        let request = S3Request(
            operation: "GetObject", method: "GET", bucket: bucket, key: objectName(key), tolerated: [404])
        let response = try await client.send(request)
        if let error = response.error {
            if error.code == "NoSuchKey" {
                throw StorageError(.notFound, "no object \(key) in \(location.uri) at \(endpoint.url)")
            }
            throw error.storageError(client.context(request))
        }
        return response.body
    }

    /// The object's size from `HeadObject`, or nil when there is none.
    ///
    /// A `HEAD` answer has no body, so an error code cannot be read from it: after a failed `HEAD` the store asks a
    /// one-key listing of the same name, whose answer tells a missing object from a missing bucket or bad credentials.
    public func size(of key: ObjectKey) async throws(StorageError) -> Int64? {
        let name = objectName(key)
        let request = S3Request(
            operation: "HeadObject", method: "HEAD", bucket: bucket, key: name, tolerated: [400, 403, 404])
        let response = try await client.send(request)
        if response.error == nil {
            guard let length = response.headers["content-length"].flatMap({ Int64($0) }) else {
                throw StorageError(.unavailable, "S3 at \(endpoint.url) answered HeadObject without a Content-Length")
            }
            return length
        }
        let page = try await listPage(prefix: name, maxKeys: 1)
        if let entry = page.entries.first, entry.key == name { return entry.size }
        if response.status == 404 { return nil }
        // Listing is allowed but HEAD is not: the credentials lack read permission on objects.
        throw S3ErrorDetails(status: response.status, code: "AccessDenied", message: "HEAD refused")
            .storageError(client.context(request))
    }

    /// Every object below `prefix` (keys starting with `prefix/`), in key (byte) order, via `ListObjectsV2` pages.
    ///
    /// Keys in the bucket that are not valid ``ObjectKey``s (written by something else) are left out.
    public func list(under prefix: ObjectKey) async throws(StorageError) -> [ObjectKey] {
        let namePrefix = objectName(prefix) + "/"
        // The store's prefix is ASCII (an ObjectKey), so characters and bytes agree.
        let strip = self.prefix.isEmpty ? 0 : self.prefix.count + 1
        var keys: [ObjectKey] = []
        var continuation: ListContinuation?
        repeat {
            let page = try await listPage(prefix: namePrefix, maxKeys: client.options.listPageSize, after: continuation)
            for entry in page.entries where entry.key.hasPrefix(namePrefix) {
                if let key = try? ObjectKey(String(entry.key.dropFirst(strip))) { keys.append(key) }
            }
            continuation = page.next
        } while continuation != nil
        // S3 lists in byte order, but SeaweedFS lists directory by directory ("a/b" before "a-b"): sort to keep the
        // promise whatever the server.
        return keys.sorted { $0.rawValue.utf8.lexicographicallyPrecedes($1.rawValue.utf8) }
    }

    /// Deletes objects with `DeleteObjects`, 1000 keys per request; keys that do not exist are not an error.
    public func delete(_ keys: [ObjectKey]) async throws(StorageError) {
        for start in stride(from: 0, to: keys.count, by: 1000) {
            let batch = keys[start..<min(start + 1000, keys.count)]
            // ObjectKey's characters need no XML escaping.
            let objects = batch.map { "<Object><Key>\(objectName($0))</Key></Object>" }.joined()
            let body = Array("<Delete><Quiet>true</Quiet>\(objects)</Delete>".utf8)
            let request = S3Request(
                operation: "DeleteObjects", method: "POST", bucket: bucket, query: [("delete", "")],
                headers: [("content-md5", Self.contentMD5(body)), ("content-type", "application/xml")], body: body)
            let response = try await client.send(request)
            // With <Quiet>, only failures are listed; a key that was already gone is not one.
            let failures = (response.document?.children("Error") ?? []).filter { $0["Code"] != "NoSuchKey" }
            if let first = failures.first {
                let details = S3ErrorDetails(
                    status: 200, code: first["Code"] ?? "InternalError", message: first["Message"] ?? "")
                var context = client.context(request)
                context.resource = "s3://\(bucket)/\(first["Key"] ?? "")"
                let error = details.storageError(context)
                throw StorageError(
                    error.code, "\(failures.count) of \(batch.count) deletes failed; first: \(error.message)")
            }
        }
    }

    /// Aborts the multipart uploads below `prefix` initiated before `cutoff`, returning how many it aborted.
    ///
    /// An upload whose initiation time cannot be read is left alone: it might be in progress.
    public func removeIncompleteWrites(under prefix: ObjectKey, startedBefore cutoff: Date) async throws(StorageError)
        -> Int
    {
        var aborted = 0
        var marker: (key: String, uploadID: String)?
        repeat {
            var query = [("uploads", ""), ("prefix", objectName(prefix) + "/"), ("max-uploads", "1000")]
            if let marker { query += [("key-marker", marker.key), ("upload-id-marker", marker.uploadID)] }
            let response = try await client.send(
                S3Request(operation: "ListMultipartUploads", method: "GET", bucket: bucket, query: query))
            let document = try parsed(response, "ListMultipartUploads")
            for upload in document.children("Upload") {
                guard let key = upload["Key"], let uploadID = upload["UploadId"],
                    let initiated = upload["Initiated"].flatMap(Self.parseTimestamp), initiated < cutoff
                else { continue }
                let abort = try await client.send(
                    S3Request(
                        operation: "AbortMultipartUpload", method: "DELETE", bucket: bucket, key: key,
                        query: [("uploadId", uploadID)], tolerated: [404]))
                // NoSuchUpload: completed or aborted by someone else meanwhile.
                if abort.error == nil { aborted += 1 }
            }
            let next = (key: document["NextKeyMarker"] ?? "", uploadID: document["NextUploadIdMarker"] ?? "")
            let truncated = document["IsTruncated"] == "true" && !next.key.isEmpty
            // A server that repeats its markers would loop forever: stop instead.
            marker = truncated && (next.key != marker?.key || next.uploadID != marker?.uploadID) ? next : nil
        } while marker != nil
        return aborted
    }

    // MARK: Setup

    /// Creates the bucket (`CreateBucket`); one that exists and is ours already is fine. For tests and local
    /// S3-compatible servers: a production bucket is made by whoever owns the account.
    ///
    /// - Throws: `alreadyExists` when the name is taken by someone else.
    public func createBucket() async throws(StorageError) {
        // Outside us-east-1, AWS wants the region in the body; S3-compatible servers accept (and ignore) it.
        let body =
            region == "us-east-1"
            ? []
            : Array(
                "<CreateBucketConfiguration><LocationConstraint>\(region)</LocationConstraint></CreateBucketConfiguration>"
                    .utf8)
        let request = S3Request(
            operation: "CreateBucket", method: "PUT", bucket: bucket, body: body, tolerated: [409])
        let response = try await client.send(request)
        guard let error = response.error, error.code != "BucketAlreadyOwnedByYou" else { return }
        if error.code == "BucketAlreadyExists" {
            throw StorageError(
                .alreadyExists, "bucket \(bucket) at \(endpoint.url) belongs to someone else: pick another")
        }
        throw error.storageError(client.context(request))
    }

    // MARK: Listing

    /// Where the next listing page starts.
    private enum ListContinuation: Equatable {
        case token(String)
        case startAfter(String)
    }

    private struct ListPage {
        var entries: [(key: String, size: Int64)]
        var next: ListContinuation?
    }

    private func listPage(prefix: String, maxKeys: Int, after: ListContinuation? = nil) async throws(StorageError)
        -> ListPage
    {
        var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(maxKeys))]
        switch after {
        case .token(let token): query.append(("continuation-token", token))
        case .startAfter(let key): query.append(("start-after", key))
        case nil: break
        }
        let response = try await client.send(
            S3Request(operation: "ListObjectsV2", method: "GET", bucket: bucket, query: query))
        let document = try parsed(response, "ListObjectsV2")
        // We never ask for url encoding, but honour it if a server applies it anyway.
        let urlEncoded = document["EncodingType"] == "url"
        let entries = document.children("Contents").compactMap { contents -> (key: String, size: Int64)? in
            guard var key = contents["Key"] else { return nil }
            if urlEncoded { key = key.removingPercentEncoding ?? key }
            return (key, Int64(contents["Size"] ?? "") ?? 0)
        }
        guard document["IsTruncated"] == "true" else { return ListPage(entries: entries) }
        // A truncated page may hold no keys and still carry a token; without a token (seen in older S3 clones) the
        // listing continues after the page's last key instead.
        let token = document["NextContinuationToken"].flatMap { $0.isEmpty ? nil : ListContinuation.token($0) }
        guard let next = token ?? entries.last.map({ .startAfter($0.key) }) else { return ListPage(entries: entries) }
        return ListPage(entries: entries, next: next)
    }

    // MARK: Helpers

    /// The key in the bucket: the store's prefix, `/`, the object key.
    private func objectName(_ key: ObjectKey) -> String {
        prefix.isEmpty ? key.rawValue : prefix + "/" + key.rawValue
    }

    private func parsed(_ response: S3Response, _ operation: String) throws(StorageError) -> S3XMLElement {
        guard let document = response.document else {
            throw StorageError(
                .unavailable, "S3 at \(endpoint.url) answered \(operation) with a body that is not XML")
        }
        return document
    }

    /// Base64 of the MD5 of the body: S3 checks it, and `DeleteObjects` requires it.
    private static func contentMD5(_ bytes: [UInt8]) -> String {
        Data(Insecure.MD5.hash(data: bytes)).base64EncodedString()
    }

    /// S3's timestamps: `2024-05-01T12:00:00.000Z`, sometimes without the fraction.
    static func parseTimestamp(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(trimmed))
            ?? (try? Date.ISO8601FormatStyle().parse(trimmed))
    }
}
