import Foundation
import Storage
import Testing

/// ``SigV4Signer`` against the worked examples of AWS's "Signature Calculations for the Authorization Header" (S3
/// API reference): same credentials, same time, same requests, the signatures AWS published.
@Suite struct S3BlobStoreSigningTests {
    private let signer = SigV4Signer(
        credentials: S3Credentials(
            accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1")
    /// 2013-05-24T00:00:00Z, the examples' time.
    private let exampleDate = Date(timeIntervalSince1970: 1_369_353_600)
    private let host = ("Host", "examplebucket.s3.amazonaws.com")

    @Test func getObjectExample() {
        let signed = signer.sign(
            method: "GET", path: "/test.txt", headers: [host, ("Range", "bytes=0-9")],
            payloadHash: SigV4Signer.emptyPayloadHash, date: exampleDate)
        #expect(
            signed.canonicalRequest == """
                GET
                /test.txt

                host:examplebucket.s3.amazonaws.com
                range:bytes=0-9
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;range;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """)
        #expect(
            signed.stringToSign == """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
                """)
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(
            signed.authorization
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func putObjectExampleEncodesTheKeyAndHashesTheBody() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let payloadHash = SigV4Signer.hash(body)
        #expect(payloadHash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let signed = signer.sign(
            method: "PUT", path: "/test$file.text",
            headers: [host, ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: payloadHash, date: exampleDate)
        #expect(signed.canonicalRequest.hasPrefix("PUT\n/test%24file.text\n\n"))
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func listObjectsExampleSortsTheQuery() {
        let signed = signer.sign(
            method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: [host],
            payloadHash: SigV4Signer.emptyPayloadHash, date: exampleDate)
        #expect(signed.canonicalRequest.hasPrefix("GET\n/\nmax-keys=2&prefix=J\n"))
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func getLifecycleExampleSignsAFlagParameterWithAnEmptyValue() {
        let signed = signer.sign(
            method: "GET", path: "/", query: [("lifecycle", "")], headers: [host],
            payloadHash: SigV4Signer.emptyPayloadHash, date: exampleDate)
        #expect(signed.canonicalRequest.hasPrefix("GET\n/\nlifecycle=\n"))
        #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func sessionTokenIsSentAndSigned() {
        var withToken = signer
        withToken.credentials.sessionToken = "token/with+chars="
        let signed = withToken.sign(
            method: "GET", path: "/b/k", headers: [("host", "h")], payloadHash: SigV4Signer.emptyPayloadHash,
            date: exampleDate)
        #expect(signed.headers.contains { $0.name == "x-amz-security-token" && $0.value == "token/with+chars=" })
        #expect(
            signed.authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"))
        let unsigned = signer.sign(
            method: "GET", path: "/b/k", headers: [("host", "h")], payloadHash: SigV4Signer.emptyPayloadHash,
            date: exampleDate)
        #expect(signed.signature != unsigned.signature)
    }

    @Test func encodingKeepsOnlyUnreservedCharacters() {
        #expect(SigV4Signer.encode("a-b_c.d~e", keepingSlash: false) == "a-b_c.d~e")
        #expect(SigV4Signer.encode("a b/c+d=é", keepingSlash: false) == "a%20b%2Fc%2Bd%3D%C3%A9")
        #expect(SigV4Signer.encodePath("/bucket/dir/a b*") == "/bucket/dir/a%20b%2A")
        #expect(
            SigV4Signer.canonicalQuery([("uploadId", "a/b+c=="), ("partNumber", "2"), ("b", "2"), ("b", "1")])
                == "b=1&b=2&partNumber=2&uploadId=a%2Fb%2Bc%3D%3D")
    }

    @Test(arguments: [
        (0.0, "19700101T000000Z"),
        (1_369_353_600.0, "20130524T000000Z"),
        (951_782_400.0, "20000229T000000Z"),
        (4_102_444_799.9, "20991231T235959Z"),
        (-1.0, "19691231T235959Z"),
    ])
    func timestampsAreUTC(seconds: Double, expected: String) {
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: seconds)) == expected)
    }
}
