/// The keys that sign S3 requests. Its description never shows the secret or the session token, so credentials can
/// appear in logs and error messages safely.
public struct S3Credentials: Sendable, Hashable, CustomStringConvertible {
    /// The access key id (`AWS_ACCESS_KEY_ID`).
    public var accessKeyID: String
    /// The secret access key (`AWS_SECRET_ACCESS_KEY`).
    public var secretAccessKey: String
    /// The session token of temporary credentials (`AWS_SESSION_TOKEN`), if any.
    public var sessionToken: String?

    /// Creates credentials.
    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and the optional `AWS_SESSION_TOKEN`, the variables the
    /// workers' boto3 reads too, from `environment` (normally `ProcessInfo.processInfo.environment`).
    ///
    /// - Throws: `unauthenticated` naming the missing variables.
    public static func fromEnvironment(_ environment: [String: String]) throws(StorageError) -> S3Credentials {
        func value(_ name: String) -> String? {
            environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        let missing = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].filter { value($0) == nil }
        guard missing.isEmpty, let accessKeyID = value("AWS_ACCESS_KEY_ID"),
            let secret = value("AWS_SECRET_ACCESS_KEY")
        else {
            throw StorageError(
                .unauthenticated,
                "S3 checkpoint storage needs credentials: set \(missing.joined(separator: " and ")) "
                    + "in the coordinator's environment")
        }
        return S3Credentials(
            accessKeyID: accessKeyID, secretAccessKey: secret, sessionToken: value("AWS_SESSION_TOKEN"))
    }

    /// The access key id and whether a session token is present; never the secrets.
    public var description: String {
        "S3Credentials(accessKeyID: \(accessKeyID), secretAccessKey: <redacted>"
            + (sessionToken == nil ? ")" : ", sessionToken: <redacted>)")
    }
}
