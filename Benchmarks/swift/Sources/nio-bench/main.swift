// SwiftNIO 2 / NIOHTTP1 baseline: ONE event loop, GET / -> 200 "Hello, World!".
// Keep-alive and pipelining are handled by NIO's HTTPServerPipelineHandler
// (configureHTTPServerPipeline(withPipeliningAssistance: true)), which holds
// back the next pipelined request until the current response has been sent.
//
// For the other scenarios (Benchmarks/README.md), the routes every server has:
//   POST /echo    200 with the request body, each part written back as it
//                 arrives (Content-Length from the request's when it has one)
//   GET /stream?n=N[&size=B][&ms=M]  chunked: N chunks of B bytes ('x'), or
//                 "chunk i\n" lines without size; M ms apart (a repeated task
//                 on the channel's event loop), else written while the channel
//                 is writable (resumed by channelWritabilityChanged)
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

    private enum Mode { case hello, echo, stream }
    private var mode = Mode.hello
    // /stream state
    private var remaining = 0
    private var counter = 0
    private var block: ByteBuffer? = nil
    private var ticker: RepeatedTask? = nil
    private var streaming = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            method = head.method
            uri = head.uri
            if uri == "/" {
                mode = .hello
            } else if method == .POST && uri == "/echo" {
                mode = .echo
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/octet-stream")
                if let cl = head.headers.first(name: "Content-Length") {
                    headers.add(name: "Content-Length", value: cl)
                }
                if !keepAlive { headers.add(name: "Connection", value: "close") }
                context.write(
                    Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                    promise: nil)
            } else if method == .GET && uri.hasPrefix("/stream") {
                mode = .stream
            } else {
                mode = .hello
            }
        case .body(let part):
            if mode == .echo {
                context.write(Self.wrapOutboundOut(.body(.byteBuffer(part))), promise: nil)
            }
        case .end:
            switch mode {
            case .hello: respond(context: context)
            case .echo: finish(context: context)
            case .stream: startStream(context: context)
            }
        }
    }

    private static func query(_ uri: String, _ key: String) -> Int? {
        guard let q = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 && kv[0] == key { return Int(kv[1]) }
        }
        return nil
    }

    private func finish(context: ChannelHandlerContext) {
        if keepAlive {
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                loopBoundContext.value.close(promise: nil)
            }
        }
        mode = .hello
    }

    private func startStream(context: ChannelHandlerContext) {
        remaining = max(0, Self.query(uri, "n") ?? 10)
        counter = 0
        let size = Self.query(uri, "size") ?? 0
        let ms = Self.query(uri, "ms") ?? 0
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
            promise: nil)
        if size > 0 {
            var b = context.channel.allocator.buffer(capacity: size)
            b.writeRepeatingByte(UInt8(ascii: "x"), count: size)
            block = b
        } else {
            block = nil
        }
        if ms > 0 {
            emitOne(context: context)
            context.flush()
            let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
            ticker = context.eventLoop.scheduleRepeatedTask(
                initialDelay: .milliseconds(Int64(ms)), delay: .milliseconds(Int64(ms))
            ) { _ in
                let me = loopBoundSelf.value
                let ctx = loopBoundContext.value
                if me.remaining == 0 { return }
                me.emitOne(context: ctx)
                if me.remaining == 0 {
                    me.ticker?.cancel()
                    me.ticker = nil
                    me.finish(context: ctx)
                } else {
                    ctx.flush()
                }
            }
        } else {
            streaming = true
            pump(context: context)
        }
    }

    private func emitOne(context: ChannelHandlerContext) {
        remaining -= 1
        if let block {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(block))), promise: nil)
        } else {
            var b = context.channel.allocator.buffer(capacity: 16)
            b.writeString("chunk \(counter)\n")
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
        }
        counter += 1
    }

    /// Writes while the channel is writable; channelWritabilityChanged resumes.
    private func pump(context: ChannelHandlerContext) {
        while streaming && remaining > 0 && context.channel.isWritable {
            emitOne(context: context)
            if !context.channel.isWritable { context.flush() }
        }
        if streaming && remaining == 0 {
            streaming = false
            finish(context: context)
        } else {
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if streaming && context.channel.isWritable { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        ticker?.cancel()
        ticker = nil
        streaming = false
        context.fireChannelInactive()
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
