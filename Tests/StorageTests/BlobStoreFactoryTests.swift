import Foundation
import RuntimeCore
import Storage
import Testing

/// ``BlobStoreFactory/open(uri:endpoint:region:credentials:environment:options:)``: which URIs open which store, where S3
/// settings come from, and the messages for what cannot be opened.
@Suite struct BlobStoreFactoryTests {
    private let credentials = S3Credentials(accessKeyID: "AK", secretAccessKey: "SK")

    @Test func fileURIsAndAbsolutePathsOpenALocalStore() throws {
        let directory = TemporaryDirectory()
        for uri in [
            "file://" + directory.path + "/a", "file://localhost" + directory.path + "/a", directory.path + "/a/",
        ] {
            let store = try #require(try BlobStoreFactory.open(uri: uri) as? LocalBlobStore)
            #expect(store.location.uri == "file://" + directory.path + "/a")
        }
        let spaced = try #require(
            try BlobStoreFactory.open(uri: "file://" + directory.path + "/with%20space") as? LocalBlobStore)
        #expect(spaced.root == directory.path + "/with space")
    }

    @Test(arguments: ["file://host/ckpt", "file:relative", "relative/dir", "ckpt", "", "http://x/y", "gs://b/p"])
    func unusableURIsAreInvalidArguments(uri: String) {
        let error = #expect(throws: StorageError.self) { try BlobStoreFactory.open(uri: uri, credentials: credentials) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(uri.debugDescription) == true)
    }

    @Test func s3URIsOpenAnS3StoreWithExplicitSettings() throws {
        let store = try #require(
            try BlobStoreFactory.open(
                uri: "s3://ckpt/runs/a/", endpoint: "http://127.0.0.1:8333", region: "eu-west-1",
                credentials: credentials, environment: [:]) as? S3BlobStore)
        #expect(store.bucket == "ckpt")
        #expect(store.prefix == "runs/a")
        #expect(
            store.location
                == BlobStoreLocation(uri: "s3://ckpt/runs/a", endpoint: "http://127.0.0.1:8333", region: "eu-west-1"))
        let bare = try #require(
            try BlobStoreFactory.open(uri: "s3://ckpt", credentials: credentials, environment: [:]) as? S3BlobStore)
        #expect(bare.location == BlobStoreLocation(uri: "s3://ckpt", endpoint: "", region: "us-east-1"))
    }

    @Test func s3SettingsDefaultToTheVariablesBoto3Reads() throws {
        let environment = [
            "AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3-specific:2",
            "AWS_DEFAULT_REGION": "eu-central-1", "AWS_ACCESS_KEY_ID": "ENVAK", "AWS_SECRET_ACCESS_KEY": "ENVSK",
        ]
        let store = try #require(
            try BlobStoreFactory.open(uri: "s3://ckpt/p", environment: environment) as? S3BlobStore)
        #expect(store.location.endpoint == "http://s3-specific:2")
        #expect(store.region == "eu-central-1")
        // Explicit values win over the environment.
        let explicit = try #require(
            try BlobStoreFactory.open(
                uri: "s3://ckpt/p", endpoint: "http://given:3", region: "us-west-2", environment: environment)
                as? S3BlobStore)
        #expect(explicit.location.endpoint == "http://given:3")
        #expect(explicit.region == "us-west-2")
    }

    @Test func s3WithoutCredentialsIsUnauthenticated() {
        let error = #expect(throws: StorageError.self) {
            try BlobStoreFactory.open(uri: "s3://ckpt/p", environment: [:])
        }
        #expect(error?.code == .unauthenticated)
        #expect(error?.message.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") == true)
    }

    @Test(arguments: [
        ("s3://", "no bucket"), ("s3:///prefix", "no bucket"), ("s3://Bad_Bucket/p", "S3 bucket name"),
        ("s3://ckpt/a//b", "key prefix"), ("s3://ckpt/../etc", "key prefix"), ("s3://ckpt/a b", "key prefix"),
    ])
    func badS3URIsSayWhichPartIsWrong(uri: String, part: String) {
        let error = #expect(throws: StorageError.self) {
            try BlobStoreFactory.open(uri: uri, credentials: credentials, environment: [:])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(part) == true, "\(error?.message ?? "")")
    }

    @Test func badEndpointIsAnInvalidArgument() {
        let error = #expect(throws: StorageError.self) {
            try BlobStoreFactory.open(
                uri: "s3://ckpt", endpoint: "localhost:8333", credentials: credentials, environment: [:])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("--checkpoint-s3-endpoint") == true)
    }
}
