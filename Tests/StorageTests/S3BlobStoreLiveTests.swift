import Checkpoint
import Foundation
import RuntimeCore
import Testing

@testable import Storage

/// ``S3BlobStore`` against a real SeaweedFS server (started once for the suite): SigV4 as a real server checks it,
/// paging, batch deletes, multipart cleanup and the error mapping of real error responses.
@Suite(.seaweedFS)
struct S3BlobStoreLiveTests {
    private func key(_ raw: String) throws -> ObjectKey { try ObjectKey(raw) }

    /// A prefix no other test uses, so tests can share the bucket and run in parallel.
    private func uniquePrefix(_ name: String) -> String {
        "\(name)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    @Test func putGetSizeAndOverwrite() async throws {
        let server = try SeaweedFSServer.require()
        let store = try server.store(prefix: uniquePrefix("round-trip"))
        let manifest = try key("task-1/step-000000100/manifest.json")
        let bytes = Array("{\"step\": 100}".utf8)

        try await store.put(manifest, bytes: bytes)
        #expect(try await store.get(manifest) == bytes)
        #expect(try await store.size(of: manifest) == Int64(bytes.count))

        let larger = [UInt8](repeating: 7, count: 300_000)
        try await store.put(manifest, bytes: larger)
        #expect(try await store.get(manifest) == larger)
        #expect(try await store.size(of: manifest) == 300_000)

        let empty = try key("task-1/empty")
        try await store.put(empty, bytes: [])
        #expect(try await store.get(empty) == [])
        #expect(try await store.size(of: empty) == 0)
    }

    @Test func missingObjectIsNotFoundOrNil() async throws {
        let server = try SeaweedFSServer.require()
        let store = try server.store(prefix: uniquePrefix("missing"))
        let absent = try key("task-1/none.part")

        #expect(try await store.size(of: absent) == nil)
        let error = await #expect(throws: StorageError.self) { try await store.get(absent) }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("task-1/none.part") == true)
    }

    @Test func locationNamesBucketPrefixEndpointAndRegion() async throws {
        let server = try SeaweedFSServer.require()
        let store = try server.store(prefix: "ckpt/run-1")
        #expect(store.location.uri == "s3://\(server.bucket)/ckpt/run-1")
        #expect(store.location.endpoint == server.endpoint.url)
        #expect(store.location.region == "us-east-1")
        #expect(try server.store(prefix: "").location.uri == "s3://\(server.bucket)")
    }

    @Test func listPagesThroughMoreThanOneThousandKeysAndBatchDeletesThem() async throws {
        let server = try SeaweedFSServer.require()
        let store = try server.store(prefix: uniquePrefix("many"))
        let keys = try (0..<1_005).map { try key(String(format: "task/ck/part-%05d", $0)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // 16 uploads in flight: fast enough on two cores, gentle enough for one SeaweedFS.
            for (index, key) in keys.enumerated() {
                if index >= 16 { try await group.next() }
                group.addTask { try await store.put(key, bytes: [1]) }
            }
            try await group.waitForAll()
        }

        // 1000 keys per page: the second page comes through the continuation token.
        #expect(try await store.list(under: key("task")) == keys)

        // 1005 keys: two DeleteObjects batches (1000 + 5), plus keys that do not exist.
        try await store.delete(keys + [key("task/ck/never-written")])
        #expect(try await store.list(under: key("task")) == [])
    }

    @Test func listWithSmallPagesKeepsKeyOrderAndStaysUnderThePrefix() async throws {
        let server = try SeaweedFSServer.require()
        let prefix = uniquePrefix("pages")
        let store = try server.store(
            prefix: prefix, options: S3BlobStore.Options(maxAttempts: 2, listPageSize: 3))
        let inside = try ["ck1/a", "ck1/a-b", "ck1/a.b", "ck1/a/b", "ck1/a0", "ck1/z/y/x"].map(key)
        let outside = try ["ck10/a", "ck1", "ck0/a"].map(key)
        for key in (inside + outside).shuffled() { try await store.put(key, bytes: Array(key.rawValue.utf8)) }

        // Byte order: '-' < '.' < '/' < '0', as S3 lists; "ck10/..." and "ck1" itself are not under "ck1/".
        #expect(try await store.list(under: key("ck1")) == inside)
        #expect(try await store.list(under: key("ck1/a")) == [key("ck1/a/b")])
        #expect(try await store.list(under: key("nothing")) == [])

        // Another prefix in the same bucket sees none of it.
        let neighbour = try server.store(prefix: prefix + "-other")
        #expect(try await neighbour.list(under: key("ck1")) == [])
        try await neighbour.put(key("ck1/mine"), bytes: [1])
        #expect(try await store.list(under: key("ck1")) == inside)
    }

    @Test func deleteRemovesObjectsAndIgnoresMissingOnes() async throws {
        let server = try SeaweedFSServer.require()
        let store = try server.store(prefix: uniquePrefix("delete"))
        let kept = try key("t/keep")
        let gone = try key("t/gone")
        try await store.put(kept, bytes: [1])
        try await store.put(gone, bytes: [2])

        try await store.delete([gone, key("t/never")])
        #expect(try await store.size(of: gone) == nil)
        #expect(try await store.get(kept) == [1])
        try await store.delete([])
        try await store.delete([gone])
    }

    @Test func removeIncompleteWritesAbortsStaleMultipartUploadsUnderThePrefix() async throws {
        let server = try SeaweedFSServer.require()
        let prefix = uniquePrefix("multipart")
        let store = try server.store(prefix: prefix)
        let client = S3Client(
            endpoint: server.endpoint, signer: SigV4Signer(credentials: server.admin, region: "us-east-1"),
            options: S3BlobStore.Options())
        let inside = try await startMultipartUpload(client, bucket: server.bucket, key: "\(prefix)/task/ck/rank-0.part")
        let outside = try await startMultipartUpload(client, bucket: server.bucket, key: "\(prefix)/other/rank-0.part")

        // Started just now: not before a cutoff an hour ago.
        #expect(try await store.removeIncompleteWrites(under: key("task"), startedBefore: Date() - 3600) == 0)
        #expect(
            try await uploadIDs(client, bucket: server.bucket, prefix: prefix).sorted() == [inside, outside].sorted())

        // Before a cutoff in the future: aborted, but only under the prefix asked for.
        #expect(try await store.removeIncompleteWrites(under: key("task"), startedBefore: Date() + 60) == 1)
        #expect(try await uploadIDs(client, bucket: server.bucket, prefix: prefix) == [outside])
        #expect(try await store.removeIncompleteWrites(under: key("task"), startedBefore: Date() + 60) == 0)
        // An aborted upload never became an object.
        #expect(try await store.list(under: key("task")) == [])
    }

    // MARK: Errors from a real server

    @Test func wrongSecretIsUnauthenticatedOnEveryOperation() async throws {
        let server = try SeaweedFSServer.require()
        let wrong = S3Credentials(accessKeyID: server.admin.accessKeyID, secretAccessKey: "not-the-secret")
        let store = try server.store(prefix: uniquePrefix("wrong-secret"), credentials: wrong)
        let object = try key("t/x")

        let failures: [StorageError?] = [
            await #expect(throws: StorageError.self) { try await store.put(object, bytes: [1]) },
            await #expect(throws: StorageError.self) { try await store.get(object) },
            // HEAD has no error body: the follow-up listing names the cause.
            await #expect(throws: StorageError.self) { try await store.size(of: object) },
            await #expect(throws: StorageError.self) { try await store.list(under: object) },
            await #expect(throws: StorageError.self) { try await store.delete([object]) },
        ]
        for error in failures {
            #expect(error?.code == .unauthenticated)
            #expect(error?.message.contains("AWS_SECRET_ACCESS_KEY") == true)
            #expect(error?.message.contains("SignatureDoesNotMatch") == true)
        }
    }

    @Test func unknownAccessKeyIsUnauthenticated() async throws {
        let server = try SeaweedFSServer.require()
        let stranger = S3Credentials(accessKeyID: "nobody", secretAccessKey: "whatever")
        let store = try server.store(prefix: uniquePrefix("stranger"), credentials: stranger)
        let error = await #expect(throws: StorageError.self) { try await store.get(key("t/x")) }
        #expect(error?.code == .unauthenticated)
        #expect(error?.message.contains("AWS_ACCESS_KEY_ID") == true)
        #expect(error?.message.contains("nobody") == true)
    }

    @Test func writeWithReadOnlyCredentialsIsPermissionDenied() async throws {
        let server = try SeaweedFSServer.require()
        let prefix = uniquePrefix("read-only")
        try await server.store(prefix: prefix).put(key("t/existing"), bytes: [5])
        let reader = try server.store(prefix: prefix, credentials: server.reader)

        #expect(try await reader.get(key("t/existing")) == [5])
        let error = await #expect(throws: StorageError.self) { try await reader.put(key("t/new"), bytes: [1]) }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("dtrreader") == true)
    }

    @Test func missingBucketIsNotFoundAndSaysToCreateIt() async throws {
        let server = try SeaweedFSServer.require()
        let store = try server.store(prefix: "p", bucket: "no-such-bucket-here")
        let object = try key("t/x")

        // Reads only: SeaweedFS creates a missing bucket on PutObject by an admin identity (AWS would answer
        // NoSuchBucket), and a new bucket would stall the shared server while it allocates volumes.
        let failures: [StorageError?] = [
            await #expect(throws: StorageError.self) { try await store.get(object) },
            await #expect(throws: StorageError.self) { try await store.size(of: object) },
            await #expect(throws: StorageError.self) { try await store.list(under: object) },
            await #expect(throws: StorageError.self) {
                try await store.removeIncompleteWrites(under: object, startedBefore: Date())
            },
        ]
        for error in failures {
            #expect(error?.code == .notFound)
            #expect(
                error?.message.contains("bucket no-such-bucket-here does not exist at \(server.endpoint.url)") == true)
            #expect(error?.message.contains("create it") == true)
        }
    }

    @Test func createBucketAcceptsABucketItAlreadyOwns() async throws {
        let server = try SeaweedFSServer.require()
        // The suite's bucket was created by this same call when the server started; again is fine.
        let store = try server.store(prefix: uniquePrefix("create"))
        try await store.createBucket()
        try await store.createBucket()
        try await store.put(key("x"), bytes: [9])
        #expect(try await store.get(key("x")) == [9])
    }

    // MARK: Raw multipart requests (what a worker's SDK does)

    /// Starts a multipart upload with one part and never completes it, as a worker that died mid-upload would.
    private func startMultipartUpload(_ client: S3Client, bucket: String, key: String) async throws -> String {
        let created = try await client.send(
            S3Request(
                operation: "CreateMultipartUpload", method: "POST", bucket: bucket, key: key,
                query: [("uploads", "")], idempotent: false))
        let uploadID = try #require(created.document?["UploadId"])
        _ = try await client.send(
            S3Request(
                operation: "UploadPart", method: "PUT", bucket: bucket, key: key,
                query: [("partNumber", "1"), ("uploadId", uploadID)], body: [UInt8](repeating: 1, count: 1024)))
        return uploadID
    }

    private func uploadIDs(_ client: S3Client, bucket: String, prefix: String) async throws -> [String] {
        let response = try await client.send(
            S3Request(
                operation: "ListMultipartUploads", method: "GET", bucket: bucket,
                query: [("uploads", ""), ("prefix", prefix + "/")]))
        return try #require(response.document).children("Upload").compactMap { $0["UploadId"] }
    }
}
