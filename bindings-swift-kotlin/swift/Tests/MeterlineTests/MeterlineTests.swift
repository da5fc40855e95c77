// XCTest mirrors of the Kotlin suite (bindings-swift-kotlin/kotlin/src/test): the same
// scenarios under the same names. They run only where a Swift toolchain exists
// (scripts/test-kotlin.sh runs `swift test` when `swift` is on PATH); the tests that need a
// server read METERLINE_TEST_ENDPOINT and METERLINE_TEST_SECRET_KEY and are skipped without.
import Foundation
import XCTest

@testable import Meterline

let testKey = "ml_sk_vectors_0123456789abcdef0123"
/// Nothing listens on port 9: every send fails at once.
let deadEndpoint = "http://127.0.0.1:9"

func repoFile(_ path: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../../\(path)").standardized
}

func vector(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: repoFile("tests/vectors/\(name)"))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}

final class ClientTests: XCTestCase {
    func testBadDataIsRefusedAtOnceWithAValidationErrorNamingThePath() throws {
        let client = try Client(options: ClientOptions(apiKey: testKey, endpoint: deadEndpoint, fetchSchemas: false))
        for data in ["[1,2]", "42", "{\"x\": NaN}", "{\"x\": "] {
            XCTAssertThrowsError(try client.track(type: "api.call", subject: "c1", data: data)) { error in
                guard case let MeterlineError.ValidationError(code, _, path, _, _, _) = error else {
                    return XCTFail("\(data): \(error)")
                }
                XCTAssertEqual(code, "invalid_event")
                XCTAssertEqual(path, "/data")
            }
        }
        XCTAssertEqual(client.stats().enqueued, 0)
        try? client.shutdown(timeout: 0)
    }

    func testWrongOptionValuesAreConfigErrorsNamingTheOptionInCamelCase() {
        XCTAssertThrowsError(try Client(options: ClientOptions(apiKey: testKey, endpoint: deadEndpoint, flushAt: 0))) { error in
            guard case let MeterlineError.ConfigError(code, _, _, option, _, _) = error else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(code, "invalid_config")
            XCTAssertEqual(option, "flushAt")
        }
    }

    func testTrackedEventsAreStoredExactlyOnce() throws {
        guard let endpoint = ProcessInfo.processInfo.environment["METERLINE_TEST_ENDPOINT"],
              let key = ProcessInfo.processInfo.environment["METERLINE_TEST_SECRET_KEY"]
        else { throw XCTSkip("METERLINE_TEST_ENDPOINT and METERLINE_TEST_SECRET_KEY are not set") }
        let client = try Client(options: ClientOptions(apiKey: key, endpoint: endpoint, fetchSchemas: false))
        let subject = "swift-\(UUID().uuidString)"
        let first = try client.track(type: "api.call", subject: subject, data: "{\"i\":0}")
        for i in 1..<100 {
            _ = try client.track(type: "api.call", subject: subject, data: "{\"i\":\(i)}")
        }
        _ = try client.track(type: "api.call", subject: subject, data: "{}", id: first)
        try client.flush(timeout: 10)
        let stats = client.stats()
        XCTAssertEqual(stats.sent, 100)
        XCTAssertEqual(stats.duplicates, 1)
        try client.shutdown(timeout: 10)
    }
}

final class EntitlementsTests: XCTestCase {
    func testAnUnreachableServerGivesTheConfiguredFallbacksWithTheReason() async throws {
        let fallbacks = "{\"features\": {\"sso\": true}, \"default\": false}"
        let client = try Client(options: ClientOptions(apiKey: testKey, endpoint: deadEndpoint, fetchSchemas: false, fallbacks: fallbacks))
        let sso = try await client.entitlement(subject: "c1", feature: "sso")
        XCTAssertEqual(sso.source, .fallback)
        XCTAssertTrue(sso.hasAccess)
        let other = try client.entitlementBlocking(subject: "c1", feature: "anything")
        XCTAssertFalse(other.hasAccess)
        try? client.shutdown(timeout: 0.1)
    }
}

final class VectorsTests: XCTestCase {
    func testTheErrorClassesAreTheCoreList() throws {
        let doc = try vector("errors.json")
        let classes = doc["classes"] as! [[String: Any]]
        XCTAssertEqual(errorClasses().map(\.name), classes.map { $0["name"] as! String })
        for c in classes {
            XCTAssertNotNil(errorOfClass(className: c["name"] as! String, code: c["default_code"] as! String))
        }
    }

    func testEntitlementsJsonPrimedAnswers() throws {
        let doc = try vector("entitlements.json")
        let payloads = doc["primed_payloads"] as! [String: Any]
        for c in doc["primed"] as! [[String: Any]] {
            let client = try Client(options: ClientOptions(apiKey: testKey, endpoint: deadEndpoint, fetchSchemas: false, stream: false))
            for name in c["prime"] as! [String] {
                let payload = try JSONSerialization.data(withJSONObject: payloads[name]!)
                try client.primeEntitlements(payload: String(decoding: payload, as: UTF8.self))
            }
            let want = c["expect"] as! [String: Any]
            let got = try client.cachedEntitlement(subject: c["subject"] as! String, feature: c["feature"] as! String)
            XCTAssertEqual(got.hasAccess, want["has_access"] as? Bool, c["name"] as! String)
            XCTAssertEqual("\(got.source)".lowercased(), (want["source"] as! String).lowercased(), c["name"] as! String)
            try? client.shutdown(timeout: 0)
        }
    }
}
