import Foundation
public import Hummingbird
import RuntimeCore

/// Turns every error a route (or the router itself) throws into a JSON error response with the right status, so
/// clients always get `{"error": {"code", "message"}}` and never an empty body or a stack trace.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Creates the middleware.
    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any CodedError {
            return Self.response(code: error.code, message: error.message)
        } catch let error as HTTPError {
            let code = ErrorCode(httpStatus: error.status)
            let message: String
            if let body = error.body {
                message = body
            } else if error.status == .notFound || error.status == .methodNotAllowed {
                message = "no route for \(request.method) \(request.uri.path): see docs/API.md for the endpoints"
            } else {
                message = error.status.reasonPhrase
            }
            return Self.response(code: code, message: message, status: error.status, headers: error.headers)
        } catch {
            // The details (internal types, file paths) go to the coordinator's log, not to the client.
            let reference = String(UInt32.random(in: .min ... .max), radix: 16)
            context.logger.error(
                "request failed",
                metadata: ["path": "\(request.uri.path)", "error": "\(error)", "reference": "\(reference)"])
            return Self.response(
                code: .internal,
                message: "internal error (reference \(reference) in the coordinator's log): please report it")
        }
    }

    static func response(
        code: ErrorCode, message: String, status: HTTPResponse.Status? = nil, headers: HTTPFields = [:]
    ) -> Response {
        let body = ErrorBody(error: .init(code: code.rawValue, message: message))
        let data =
            (try? APIRequestContext.encoder.encode(body)) ?? Data(#"{"error":{"code":"internal","message":""}}"#.utf8)
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(
            status: status ?? code.httpStatus, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
