import GRPCCore
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Explains why the coordinator could not start, in terms of the flag that fixes it; nil when the error is not a
/// start-up failure this knows about.
public func describeStartupFailure(_ error: any Error, config: CoordinatorConfig) -> String? {
    let (server, cause) = rootCause(of: error)
    let port = server == .grpc ? config.grpcPort : config.httpPort
    let flag = server == .grpc ? "--grpc-port (or DTR_GRPC_PORT)" : "--http-port (or DTR_HTTP_PORT)"
    guard let io = cause as? IOError else { return nil }
    switch io.errnoCode {
    case EADDRINUSE:
        return "port \(port) is in use: pass \(flag); 0 picks a free port"
    case EADDRNOTAVAIL:
        return "cannot bind \(config.host): no such address on this machine: pass --host (or DTR_HOST)"
    case EACCES:
        return "binding port \(port) needs privileges: pass \(flag) with a port above 1023"
    default:
        return "cannot listen on \(config.host):\(port): \(io): pass \(flag) or --host"
    }
}

private enum Server { case grpc, http }

/// Follows gRPC's wrapped causes down to the system error. gRPC wraps its transport's errors in `RuntimeError`;
/// Hummingbird throws them as they are.
private func rootCause(of error: any Error) -> (Server, any Error) {
    var server = Server.http
    var current = error
    while true {
        if let runtime = current as? RuntimeError, let cause = runtime.cause {
            server = .grpc
            current = cause
        } else if let rpc = current as? RPCError, let cause = rpc.cause {
            server = .grpc
            current = cause
        } else {
            return (server, current)
        }
    }
}
