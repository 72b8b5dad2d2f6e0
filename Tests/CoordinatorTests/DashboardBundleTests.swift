import Foundation
import Hummingbird
import RuntimeCore
import Testing

@testable import Coordinator

@Suite("Dashboard files (embedded)")
struct DashboardBundleTests {
    static let digest = String(repeating: "ab", count: 32)
    static let assets: [String: DashboardBundle.Asset] = [
        "index.html": asset("<!doctype html>", type: "text/html; charset=utf-8"),
        "app.js": asset("console.log(1)", type: "text/javascript; charset=utf-8"),
    ]

    static func asset(_ text: String, type: String) -> DashboardBundle.Asset {
        DashboardBundle.Asset(
            bytes: ByteBuffer(string: text), contentType: type, etag: "\"\(digest)\"",
            version: String(digest.prefix(12)))
    }

    func request(_ path: String, ifNoneMatch: String? = nil) -> Request {
        var headers: HTTPFields = [:]
        if let ifNoneMatch { headers[.ifNoneMatch] = ifNoneMatch }
        return Request(
            head: HTTPRequest(method: .get, scheme: "http", authority: "localhost", path: path, headerFields: headers),
            body: RequestBody(buffer: ByteBuffer()))
    }

    @Test("content types by extension")
    func contentTypes() {
        #expect(DashboardBundle.contentType(of: "index.html") == "text/html; charset=utf-8")
        #expect(DashboardBundle.contentType(of: "app.js") == "text/javascript; charset=utf-8")
        #expect(DashboardBundle.contentType(of: "app.css") == "text/css; charset=utf-8")
        #expect(DashboardBundle.contentType(of: "app.js.map") == "application/json; charset=utf-8")
        #expect(DashboardBundle.contentType(of: "blob") == "application/octet-stream")
    }

    @Test("a file with its ETag; no-cache, or a year for the ?v= of this very file (never for index.html)")
    func caching() throws {
        let plain = try DashboardBundle.response(for: "app.js", request: request("/app.js"), from: Self.assets)
        #expect(plain.status == .ok && plain.headers[.contentType] == "text/javascript; charset=utf-8")
        #expect(plain.headers[.eTag] == "\"\(Self.digest)\"" && plain.headers[.cacheControl] == "no-cache")
        #expect(plain.headers[.xContentTypeOptions] == "nosniff")
        let version = String(Self.digest.prefix(12))
        let pinned = try DashboardBundle.response(
            for: "app.js", request: request("/app.js?v=\(version)"), from: Self.assets)
        #expect(pinned.headers[.cacheControl] == "public, max-age=31536000, immutable")
        let stale = try DashboardBundle.response(for: "app.js", request: request("/app.js?v=0123"), from: Self.assets)
        #expect(stale.headers[.cacheControl] == "no-cache")
        let index = try DashboardBundle.response(
            for: "index.html", request: request("/?v=\(version)"), from: Self.assets)
        #expect(index.headers[.cacheControl] == "no-cache")
    }

    @Test("If-None-Match naming the ETag (strong, weak, in a list, or *) is a 304 without a body")
    func notModified() throws {
        let tag = "\"\(Self.digest)\""
        for header in [tag, "W/\(tag)", "\"x\", \(tag)", " \"x\" ,W/\(tag) ", "*"] {
            let response = try DashboardBundle.response(
                for: "app.js", request: request("/app.js", ifNoneMatch: header), from: Self.assets)
            #expect(response.status == .notModified, "\(header)")
            #expect(response.headers[.eTag] == tag && response.headers[.contentType] == nil)
        }
        for header in ["\"x\"", "W/\"x\"", "", Self.digest] {
            let response = try DashboardBundle.response(
                for: "app.js", request: request("/app.js", ifNoneMatch: header), from: Self.assets)
            #expect(response.status == .ok, "\(header)")
        }
    }

    @Test("without a dashboard, 404 says how to build one; a file the bundle lacks is a plain 404")
    func missing() {
        let absent = #expect(throws: CoreError.self) {
            try DashboardBundle.response(for: "index.html", request: request("/"), from: [:])
        }
        #expect(absent?.code == .notFound)
        #expect(absent?.message.contains("not built into this binary: run `make dashboard`") == true)
        let lacking = #expect(throws: CoreError.self) {
            try DashboardBundle.response(for: "app.css", request: request("/app.css"), from: Self.assets)
        }
        #expect(lacking?.message == "no file app.css in the dashboard: see docs/API.md for the endpoints")
    }

    @Test("the embedded bundle decodes to the sizes and hashes the generator recorded")
    func embedded() {
        #expect(DashboardBundle.assets.count == DashboardBundle.files.count, "every embedded file decoded whole")
        for file in DashboardBundle.files {
            let asset = DashboardBundle.assets[file.name]
            #expect(asset?.bytes.readableBytes == file.size)
            #expect(asset?.etag == "\"\(file.sha256)\"" && asset?.version.count == 12)
        }
    }
}
