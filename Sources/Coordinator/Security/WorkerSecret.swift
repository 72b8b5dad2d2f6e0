import Crypto
public import RuntimeCore

/// Per-worker secrets: a registration hands one out (bound to the worker's incarnation), and every later call that
/// names the worker must present it. The worker token only says "a client of this deployment"; the secret says
/// "the process that registered this worker". The coordinator keeps and persists only the secret's SHA-256: the
/// secret is 256 random bits, so a plain hash cannot be reversed and needs no salt or stretching.
public enum WorkerSecret {
    /// The gRPC metadata entry a call carries the secret in.
    public static let metadataKey = "dtr-worker-secret"

    /// The secret presented by the call being handled (its `dtr-worker-secret` metadata), set by
    /// ``WorkerSecretInterceptor``: a task-local because `SimpleServiceProtocol` handlers do not see metadata.
    @TaskLocal public static var presented: String?

    /// A new secret: 256 bits from the system's CSPRNG (swift-crypto's key generation), as 64 lower-case hex digits.
    public static func issue() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { bytes in
            bytes.map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined()
        }
    }

    /// The digest kept in place of `secret`.
    public static func digest(_ secret: String) -> SecretDigest {
        SecretDigest(Array(SHA256.hash(data: Array(secret.utf8))))
    }
}
