/// Why a request failed, for programs: stable names (messages are for people and may change). The gRPC edge sends it
/// as the `dtr-reason` metadata of every error, the HTTP edge as `reason` in every error body. docs/API.md lists the
/// reasons; `testdata/error-reasons.json` lists them for the Swift and Python tests.
///
/// A failure that no program needs to tell apart from others of its code has the code's *generic* reason (its name:
/// `INVALID_ARGUMENT` for `invalid_argument`); the specific reasons below name what a program handles differently.
public enum ErrorReason: String, Sendable, Hashable, CaseIterable {
    // MARK: Generic: one per code

    /// `invalid_argument` with no more specific reason: a field broke a rule (the message names it).
    case invalidArgument = "INVALID_ARGUMENT"
    /// `not_found` with no more specific reason.
    case notFound = "NOT_FOUND"
    /// `already_exists` with no more specific reason.
    case alreadyExists = "ALREADY_EXISTS"
    /// `failed_precondition` with no more specific reason.
    case failedPrecondition = "FAILED_PRECONDITION"
    /// `resource_exhausted` with no more specific reason.
    case resourceExhausted = "RESOURCE_EXHAUSTED"
    /// `aborted` with no more specific reason.
    case aborted = "ABORTED"
    /// `deadline_exceeded` with no more specific reason.
    case deadlineExceeded = "DEADLINE_EXCEEDED"
    /// `unavailable` with no more specific reason (e.g. the state store cannot be written).
    case unavailable = "UNAVAILABLE"
    /// `unimplemented` with no more specific reason.
    case unimplemented = "UNIMPLEMENTED"
    /// `unauthenticated` with no more specific reason.
    case unauthenticated = "UNAUTHENTICATED"
    /// `permission_denied` with no more specific reason.
    case permissionDenied = "PERMISSION_DENIED"
    /// `internal`: a bug or an unexpected failure.
    case `internal` = "INTERNAL"
    /// The call was cancelled (by its client, or its deadline on the client's side).
    case cancelled = "CANCELLED"

    // MARK: Membership

    /// `not_found`: the coordinator does not know the worker (never registered, or forgotten): register again.
    case unknownWorker = "UNKNOWN_WORKER"
    /// `failed_precondition`: the worker is known but not a member of its task any more (declared dead, or it left):
    /// register again.
    case notAMember = "NOT_A_MEMBER"
    /// `failed_precondition`: the call carries an older membership epoch than the task's (the membership changed);
    /// details: the task's current `membershipEpoch`. Refresh the view and call again.
    case staleEpoch = "STALE_EPOCH"
    /// `resource_exhausted`: the task already has its world size of members; details: `worldSize`. Join once a member
    /// leaves or dies.
    case taskFull = "TASK_FULL"
    /// `permission_denied`: the call names a worker but does not carry that worker's secret (the `dtr-worker-secret`
    /// its registration returned): make it from the process that registered the worker.
    case workerSecretWrong = "WORKER_SECRET_WRONG"
    /// `permission_denied`: registering a worker id that is a member heard from within the suspect timeout, without its
    /// secret; details: `retryAfter` (when it will have been silent that long, if it stays silent). Register again
    /// then, or use another id.
    case workerIdInUse = "WORKER_ID_IN_USE"

    // MARK: Data, barriers, checkpoints

    /// `failed_precondition`: the shard's lease moved to another worker (or was granted after the report's membership
    /// epoch): skip it and ask for the assignment again.
    case shardMoved = "SHARD_MOVED"
    /// `aborted`: a barrier generation failed because a participant departed or the membership changed; details:
    /// `missing`.
    case barrierAborted = "BARRIER_ABORTED"
    /// `deadline_exceeded`: a barrier generation timed out; details: `missing` (for a barrier of every member).
    case barrierTimeout = "BARRIER_TIMEOUT"
    /// `invalid_argument`: the participants of a barrier generation disagree on the reduce or on `expected`.
    case barrierMismatch = "BARRIER_MISMATCH"
    /// `failed_precondition`: the checkpoint was aborted (a part failed or did not match, a rank departed, the
    /// deadline passed): save the step again.
    case checkpointAborted = "CHECKPOINT_ABORTED"
    /// `failed_precondition`: the coordinator has no checkpoint store.
    case noCheckpointStore = "NO_CHECKPOINT_STORE"

    // MARK: Limits and the coordinator

    /// `resource_exhausted`: the client sends faster than the coordinator's rate limit; details: `retryAfter`.
    case rateLimited = "RATE_LIMITED"
    /// `resource_exhausted`: a message or payload is larger than the coordinator accepts; sending it again cannot
    /// succeed.
    case tooLarge = "TOO_LARGE"
    /// `resource_exhausted`: a count limit of the coordinator was reached (workers, tasks, datasets, tickets, barrier
    /// payloads waiting, calls in flight on a stream).
    case limitReached = "LIMIT_REACHED"
    /// `unavailable`: the coordinator is shutting down: call again once it is back.
    case shuttingDown = "SHUTTING_DOWN"
    /// `unauthenticated`: the request carries no token and the coordinator requires one.
    case tokenMissing = "TOKEN_MISSING"
    /// `unauthenticated`: the request carries a token that is not the coordinator's.
    case tokenWrong = "TOKEN_WRONG"

    /// The generic reason of a code.
    public init(generic code: ErrorCode) {
        switch code {
        case .invalidArgument: self = .invalidArgument
        case .notFound: self = .notFound
        case .alreadyExists: self = .alreadyExists
        case .failedPrecondition: self = .failedPrecondition
        case .resourceExhausted: self = .resourceExhausted
        case .aborted: self = .aborted
        case .deadlineExceeded: self = .deadlineExceeded
        case .unavailable: self = .unavailable
        case .unimplemented: self = .unimplemented
        case .unauthenticated: self = .unauthenticated
        case .permissionDenied: self = .permissionDenied
        case .internal: self = .internal
        }
    }
}

/// What a program needs to act on an error's reason; each is sent as its own metadata entry (see docs/API.md).
public struct ErrorDetails: Sendable, Hashable {
    /// The task's current membership epoch (`STALE_EPOCH`): `dtr-membership-epoch`.
    public var membershipEpoch: UInt64?
    /// Who a barrier generation was missing, by rank (`BARRIER_ABORTED`, `BARRIER_TIMEOUT`): `dtr-missing-ranks` and
    /// `dtr-missing-workers`.
    public var missing: [RankedWorker]
    /// How long to wait before trying again (`RATE_LIMITED`): `retry-after-ms` (HTTP: `Retry-After`, in seconds).
    public var retryAfter: Duration?
    /// The task's world size (`TASK_FULL`): `dtr-world-size`.
    public var worldSize: Int?

    /// Details; all absent by default.
    public init(
        membershipEpoch: UInt64? = nil, missing: [RankedWorker] = [], retryAfter: Duration? = nil,
        worldSize: Int? = nil
    ) {
        self.membershipEpoch = membershipEpoch
        self.missing = missing
        self.retryAfter = retryAfter
        self.worldSize = worldSize
    }

    /// Whether there is nothing to send.
    public var isEmpty: Bool { membershipEpoch == nil && missing.isEmpty && retryAfter == nil && worldSize == nil }
}
