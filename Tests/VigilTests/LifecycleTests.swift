import HTTPTypes
import Logging
import ServiceLifecycle
@testable import Vigil
import XCTest

/// swift-service-lifecycle integration and graceful shutdown.
final class LifecycleTests: XCTestCase {

    /// A ServiceGroup's graceful shutdown lets the request in flight finish
    /// (its response says `Connection: close`), then run() returns.
    func testGracefulShutdownThroughServiceGroup() async throws {
        let inHandler = Signal<Void>()
        var config = Server.Configuration(host: "127.0.0.1", port: 0)
        config.shutdownGracePeriod = .seconds(5)
        let server = Server(configuration: config) { _, response in
            inHandler.fire()
            try await Task.sleep(for: .milliseconds(300))
            try await response.write(HTTPResponse(status: .ok), body: "finished")
        }
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: server)], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        var port: Int?
        for _ in 0..<400 {
            port = server.localPort
            if port != nil { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        let client = try RawClient(port: try XCTUnwrap(port))
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        await group.triggerGracefulShutdown()
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString, "finished")
        XCTAssertEqual(r.header("connection"), "close")
        let ended = try await withTimeout(seconds: 5) { try await running.value }
        XCTAssertNotNil(ended, "the service group did not stop")
        XCTAssertNil(server.localPort)
    }

    /// Once shutdown starts, new connections are refused and idle ones close.
    func testShutdownClosesIdleConnections() async throws {
        let server = try await TestServer.start({ $0.logger.logLevel = .debug }) { _, response in
            try await response.write(HTTPResponse(status: .ok), body: "ok")
        }
        let idle = try server.client()
        try await idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await idle.readResponse()
        server.server.shutdown()
        let closed = try await idle.waitForClose()
        XCTAssertTrue(closed)
        try await server.stop()
    }

    func testRunWithoutHandlerThrows() async throws {
        let server = Server(configuration: .init(host: "127.0.0.1", port: 0))
        do {
            try await server.run()
            XCTFail("run() without a handler should throw")
        } catch let e as VigilError {
            XCTAssertEqual(e, .invalidArgument)
        }
    }
}
