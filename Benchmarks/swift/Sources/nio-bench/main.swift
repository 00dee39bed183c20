// SwiftNIO 2 / NIOHTTP1 baseline: ONE event loop, GET / -> 200 "Hello, World!".
// Keep-alive and pipelining are handled by NIO's HTTPServerPipelineHandler
// (configureHTTPServerPipeline(withPipeliningAssistance: true)), which holds
// back the next pipelined request until the current response has been sent.
// Usage: nio-bench [--host 127.0.0.1] [--port 8080]
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered line to stdout (print() is block-buffered when redirected).
func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

func argument(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let host = argument("--host") ?? "127.0.0.1"
let port = Int(argument("--port") ?? "8080") ?? 8080

final class HelloHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private static let body = "Hello, World!"
    private var keepAlive = true
    private var method: HTTPMethod = .GET
    private var uri = "/"
    private var buffer: ByteBuffer? = nil

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            method = head.method
            uri = head.uri
        case .body:
            break  // ignored
        case .end:
            respond(context: context)
        }
    }

    private func respond(context: ChannelHandlerContext) {
        let status: HTTPResponseStatus
        let bodyText: String
        if method == .GET && (uri == "/" || uri.hasPrefix("/?")) {
            status = .ok
            bodyText = Self.body
        } else {
            status = .notFound
            bodyText = "Not Found"
        }
        if buffer == nil {
            buffer = context.channel.allocator.buffer(capacity: 64)
        }
        buffer!.clear()
        buffer!.writeString(bodyText)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: String(bodyText.utf8.count))
        headers.add(name: "Content-Type", value: "text/plain")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer!))), promise: nil)
        if keepAlive {
            context.write(Self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                loopBoundContext.value.close(promise: nil)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.maxMessagesPerRead, value: 16)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: true,
                withErrorHandling: true
            )
            try channel.pipeline.syncOperations.addHandler(HelloHandler())
        }
    }

do {
    let channel = try bootstrap.bind(host: host, port: port).wait()
    say("nio-bench listening on \(host):\(port) (1 event loop)")
    try channel.closeFuture.wait()
} catch {
    print("nio-bench: \(error)")
    exit(1)
}
try? group.syncShutdownGracefully()
