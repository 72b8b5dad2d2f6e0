// swift-tools-version:6.2
import PackageDescription

/// Settings every target of ours shares: Swift 6 mode with the house's upcoming features (see CONTRIBUTING.md),
/// and no warnings: our own code builds with 0 of them, so any new one fails the build.
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "dtruntime",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dtr", targets: ["dtr"])
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        // S3 for checkpoints: SigV4 over async-http-client. swift-crypto as a range: grpc-swift-nio-transport's
        // swift-certificates already resolves it within 3.12.3..<6.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // MARK: Pure domain (Foundation only)
        .target(name: "RuntimeCore", swiftSettings: strictSettings),
        .target(name: "DataShard", dependencies: ["RuntimeCore"], swiftSettings: strictSettings),
        // A checkpoint records the data ledgers' position, so Checkpoint reads DataShard's records.
        .target(name: "Checkpoint", dependencies: ["RuntimeCore", "DataShard"], swiftSettings: strictSettings),

        // MARK: I/O adapters and generated wire code
        .target(
            name: "Storage",
            dependencies: [
                "RuntimeCore", "DataShard", "Checkpoint",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "RuntimeProto",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),

        // MARK: The shell
        .target(
            name: "Coordinator",
            dependencies: [
                "RuntimeCore", "DataShard", "Checkpoint", "Storage", "RuntimeProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // MARK: The swarm simulator: a client of the public gRPC API (the demo's workers and the swarm benchmarks)
        .target(
            name: "Swarm",
            dependencies: [
                "RuntimeProto", "Storage", "Checkpoint",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "dtr",
            dependencies: [
                "Coordinator", "RuntimeCore", "DataShard", "RuntimeProto", "Swarm", "Storage",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                // The benchmarks' protocol floor: the session's messages, (de)serialized as the generated service does.
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The HTTP API client of `dtr status`, `workers`, `tasks`, `logs`, `checkpoints`.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),

        // MARK: Tests
        .testTarget(name: "RuntimeCoreTests", dependencies: ["RuntimeCore"], swiftSettings: strictSettings),
        .testTarget(
            name: "DataShardTests",
            dependencies: [
                "DataShard", "RuntimeCore", .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CheckpointTests", dependencies: ["Checkpoint", "DataShard", "RuntimeCore"],
            swiftSettings: strictSettings),
        .testTarget(
            name: "StorageTests", dependencies: ["Storage", "RuntimeCore", "Checkpoint", "DataShard"],
            swiftSettings: strictSettings),
        .testTarget(
            name: "RuntimeProtoTests",
            dependencies: [
                "RuntimeProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoordinatorTests",
            dependencies: [
                "Coordinator", "RuntimeCore", "DataShard", "Checkpoint", "Storage", "RuntimeProto", "Swarm",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "dtrTests",
            dependencies: ["dtr"],
            swiftSettings: strictSettings
        ),
    ]
)
