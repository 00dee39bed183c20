// A small HTTP/1.1 client over a real loopback socket: whole responses,
// streamed response bodies (chunked decoding), raw bytes, half-close, and
// leaving on purpose with FIN or RST. Every call is bounded in time.
import HTTPTypes

/// A connection to a `VigilTestServer`, made by `server.connect()` (closed
/// at the latest when the server's scope ends).
///
/// Requests on one client go out one after the other on its connection
/// (keep-alive). Every call takes an optional `timeout` (the server's
/// `timeout` by default) and throws `VigilTestingError` with
/// `kind == .timedOut` when it runs out.
public actor VigilTestClient {
    /// How `disconnect` leaves.
    public enum Disconnect: Sendable, Hashable {
        /// `close()`: the kernel sends FIN.
        case fin
        /// `close()` with SO_LINGER 0: the kernel sends RST.
        case reset
    }

    let socket: TestSocket
    /// The default bound of every call.
    public nonisolated let timeout: Duration
    /// The Host sent when a request has no `authority`.
    private nonisolated let defaultAuthority: String

    /// Bytes read and not consumed yet: `bytes[start...]`.
    private var bytes: [UInt8] = []
    private var start = 0
    /// The body of the response being read, until its end.
    private var body: BodyState?
    private var trailers: HTTPFields?

    /// True once the server closed the connection (FIN or RST) as far as
    /// this client has read.
    public private(set) var closedByServer = false
    /// True if that close was a reset.
    public private(set) var resetByServer = false

    init(socket: TestSocket, timeout: Duration, authority: String) {
        self.socket = socket
        self.timeout = timeout
        self.defaultAuthority = authority
    }

    /// This side's port: what the server sees as the client's.
    public nonisolated var localPort: Int { socket.localPort }

    // MARK: requests and whole responses

    /// Sends `request` (with `body`, framed with Content-Length unless the
    /// request's fields frame it) and reads the whole response.
    public func execute(
        _ request: HTTPRequest, body: [UInt8]? = nil, timeout: Duration? = nil
    ) async throws -> VigilTestResponse {
        let t = timeout ?? self.timeout
        let deadline = ContinuousClock.now + t
        try await send(request, body: body, timeout: t)
        return try await readResponse(method: request.method, deadline: deadline, timeout: t)
    }

    /// `execute` with the request's parts: `try await client.execute(.get, "/hello")`.
    public func execute(
        _ method: HTTPRequest.Method, _ path: String, headerFields: HTTPFields = [:],
        body: [UInt8]? = nil, timeout: Duration? = nil
    ) async throws -> VigilTestResponse {
        try await execute(
            HTTPRequest(method: method, scheme: nil, authority: nil, path: path, headerFields: headerFields),
            body: body, timeout: timeout)
    }

    /// Sends `request` and reads the response's head; its body then comes
    /// through the returned `body` sequence, chunk by chunk as it arrives
    /// (chunked framing decoded), each chunk within `timeout`. Read the body
    /// to its end before the next request on this client.
    public func stream(
        _ request: HTTPRequest, body: [UInt8]? = nil, timeout: Duration? = nil
    ) async throws -> VigilTestStreamedResponse {
        let t = timeout ?? self.timeout
        let deadline = ContinuousClock.now + t
        try await send(request, body: body, timeout: t)
        let head = try await readHead(method: request.method, deadline: deadline, timeout: t)
        return VigilTestStreamedResponse(head: head, body: .init(client: self, timeout: t))
    }

    /// Sends `request` (and `body`) without reading anything: for a
    /// handler that should be running when the test leaves. Read the
    /// response with `readResponse(for:)`.
    public func send(_ request: HTTPRequest, body: [UInt8]? = nil, timeout: Duration? = nil) async throws {
        guard self.body == nil else {
            throw VigilTestingError(.invalidUse, "the previous response's body was not read to its end")
        }
        let t = timeout ?? self.timeout
        let head = Self.serialize(request, hasBody: body != nil, bodyCount: body?.count ?? 0,
                                  defaultAuthority: defaultAuthority)
        try await socket.write(head + (body ?? []), "sending \(request.method) \(request.path ?? "")",
                               deadline: .now + t, timeout: t)
    }

    /// `send` with the request's parts: `try await client.send(.get, "/wait")`.
    public func send(
        _ method: HTTPRequest.Method, _ path: String, headerFields: HTTPFields = [:],
        body: [UInt8]? = nil, timeout: Duration? = nil
    ) async throws {
        try await send(
            HTTPRequest(method: method, scheme: nil, authority: nil, path: path, headerFields: headerFields),
            body: body, timeout: timeout)
    }

    /// Reads the next whole response from the connection (to a request
    /// sent with `send` or `writeRaw`; `method` tells whether it answers a
    /// HEAD, which has no body).
    public func readResponse(for method: HTTPRequest.Method = .get, timeout: Duration? = nil) async throws -> VigilTestResponse {
        let t = timeout ?? self.timeout
        return try await readResponse(method: method, deadline: .now + t, timeout: t)
    }

    // MARK: raw bytes

    /// Writes `bytes` as they are.
    public func writeRaw(_ bytes: [UInt8], timeout: Duration? = nil) async throws {
        let t = timeout ?? self.timeout
        try await socket.write(bytes, "writing \(bytes.count) raw bytes", deadline: .now + t, timeout: t)
    }

    /// Writes `text`'s UTF-8 bytes as they are.
    public func writeRaw(_ text: String, timeout: Duration? = nil) async throws {
        try await writeRaw(Array(text.utf8), timeout: timeout)
    }

    /// The bytes that arrive next (what is buffered, else one read); empty
    /// once the server closed the connection.
    public func readRaw(timeout: Duration? = nil) async throws -> [UInt8] {
        let t = timeout ?? self.timeout
        if available == 0 { _ = try await fill("raw bytes", deadline: .now + t, timeout: t) }
        return take(available)
    }

    /// Every byte until the server closes the connection (FIN or RST);
    /// throws `.timedOut` if it is still open after `timeout`.
    public func readToEnd(timeout: Duration? = nil) async throws -> [UInt8] {
        let t = timeout ?? self.timeout
        let deadline = ContinuousClock.now + t
        while try await fill("the server to close the connection", deadline: deadline, timeout: t) {}
        body = nil
        return take(available)
    }

    /// Half-close (`shutdown(SHUT_WR)`): the server reads a FIN, and its
    /// answer can still be read.
    public func shutdownWrite() {
        socket.shutdownWrite()
    }

    /// Leaves: FIN or RST. Calls after it throw `.invalidUse`; a call under
    /// way in another task ends within a few milliseconds. Then await what
    /// the handler saw with `server.nextEndReason()`.
    public nonisolated func disconnect(_ how: Disconnect = .fin) {
        socket.close(how)
    }

    // MARK: the response parser

    private enum BodyState: Sendable {
        case length(Int)
        case chunkSize
        case chunkData(Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    private var available: Int { bytes.count - start }

    private func take(_ n: Int) -> [UInt8] {
        let out = Array(bytes[start..<(start + n)])
        start += n
        if start == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65536 && start > bytes.count / 2 {
            bytes.removeFirst(start)
            start = 0
        }
        return out
    }

    /// One read into the buffer: false at the end of the stream.
    private func fill(_ what: String, deadline: ContinuousClock.Instant, timeout: Duration) async throws -> Bool {
        if closedByServer { return false }
        switch try await socket.read(what, deadline: deadline, timeout: timeout) {
        case .bytes(let b):
            bytes += b
            return true
        case .eof:
            closedByServer = true
            return false
        case .reset:
            closedByServer = true
            resetByServer = true
            return false
        }
    }

    /// The next line (CRLF stripped).
    private func line(_ what: String, deadline: ContinuousClock.Instant, timeout: Duration) async throws -> [UInt8] {
        var from = start
        while true {
            if let i = Self.find([13, 10], in: bytes, from: max(start, from - 1)) {
                let line = take(i - start)
                _ = take(2)
                return line
            }
            from = bytes.count
            guard try await fill(what, deadline: deadline, timeout: timeout) else {
                throw VigilTestingError(.connectionClosed, "the connection ended while waiting for \(what); had: \(Self.show(bytes[start...]))")
            }
        }
    }

    private func readResponse(method: HTTPRequest.Method, deadline: ContinuousClock.Instant,
                              timeout: Duration) async throws -> VigilTestResponse {
        let head = try await readHead(method: method, deadline: deadline, timeout: timeout)
        var all: [UInt8] = []
        while let chunk = try await nextChunk(deadline: deadline, timeout: timeout) { all += chunk }
        return VigilTestResponse(head: head, body: all, trailerFields: trailers)
    }

    /// The next final response head (1xx interim responses but 101 are
    /// skipped), and the body framing it announces.
    private func readHead(method: HTTPRequest.Method, deadline: ContinuousClock.Instant,
                          timeout: Duration) async throws -> HTTPResponse {
        guard body == nil else {
            throw VigilTestingError(.invalidUse, "the previous response's body was not read to its end")
        }
        while true {
            let status = try await line("a response's status line", deadline: deadline, timeout: timeout)
            // "HTTP/1.1 200 OK"
            let parts = status.split(separator: 32, maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0].starts(with: Array("HTTP/1.".utf8)),
                  let code = Int(String(decoding: parts[1], as: UTF8.self)), (100...999).contains(code)
            else {
                throw VigilTestingError(.malformedResponse, "status line: \(Self.show(status[...]))")
            }
            let reason = parts.count > 2 ? String(decoding: parts[2], as: UTF8.self) : ""
            var fields = HTTPFields()
            while true {
                let l = try await line("a response's header fields", deadline: deadline, timeout: timeout)
                if l.isEmpty { break }
                fields.append(try Self.field(l))
            }
            let head = HTTPResponse(status: .init(code: code, reasonPhrase: reason), headerFields: fields)
            if code >= 100 && code < 200 && code != 101 { continue }
            trailers = nil
            if method == .head || code == 101 || code == 204 || code == 304 {
                body = nil
            } else if method == .connect && code >= 200 && code < 300 {
                body = nil
            } else if let te = fields[.transferEncoding], te.lowercased().contains("chunked") {
                body = .chunkSize
            } else if let cl = fields[.contentLength] {
                guard let n = Int(cl), n >= 0 else {
                    throw VigilTestingError(.malformedResponse, "Content-Length: \(cl)")
                }
                body = .length(n)
            } else {
                body = .untilClose
            }
            return head
        }
    }

    private static func field(_ line: [UInt8]) throws -> HTTPField {
        guard let colon = line.firstIndex(of: 58),
              let name = HTTPField.Name(String(decoding: line[..<colon], as: UTF8.self))
        else {
            throw VigilTestingError(.malformedResponse, "header line: \(show(line[...]))")
        }
        var value = line[(colon + 1)...]
        while let f = value.first, f == 32 || f == 9 { value = value.dropFirst() }
        while let l = value.last, l == 32 || l == 9 { value = value.dropLast() }
        return HTTPField(name: name, value: String(decoding: value, as: UTF8.self))
    }

    /// The next piece of the current response's body, nil at its end.
    func nextChunk(deadline: ContinuousClock.Instant, timeout: Duration) async throws -> [UInt8]? {
        while let state = body {
            switch state {
            case .length(0):
                body = nil
            case .length(let n):
                if available == 0, try await !fill("the response body", deadline: deadline, timeout: timeout) {
                    body = nil
                    throw VigilTestingError(.connectionClosed, "the connection ended with \(n) bytes of the body still to come")
                }
                let got = take(min(n, available))
                body = .length(n - got.count)
                return got
            case .chunkSize:
                let l = try await line("a chunk size", deadline: deadline, timeout: timeout)
                let hex = l.prefix { $0 != 59 }  // ';' starts an extension
                guard let n = Int(String(decoding: hex, as: UTF8.self).trimmingSpaces, radix: 16), n >= 0 else {
                    body = nil
                    throw VigilTestingError(.malformedResponse, "chunk size line: \(Self.show(l[...]))")
                }
                body = n == 0 ? .trailers : .chunkData(n)
            case .chunkData(let n):
                if available == 0, try await !fill("a chunk's data", deadline: deadline, timeout: timeout) {
                    body = nil
                    throw VigilTestingError(.connectionClosed, "the connection ended inside a chunk")
                }
                let got = take(min(n, available))
                body = got.count == n ? .chunkDataEnd : .chunkData(n - got.count)
                return got
            case .chunkDataEnd:
                let l = try await line("the CRLF after a chunk", deadline: deadline, timeout: timeout)
                guard l.isEmpty else {
                    body = nil
                    throw VigilTestingError(.malformedResponse, "bytes after a chunk's data: \(Self.show(l[...]))")
                }
                body = .chunkSize
            case .trailers:
                let l = try await line("the trailer section", deadline: deadline, timeout: timeout)
                if l.isEmpty {
                    body = nil
                } else {
                    var t = trailers ?? HTTPFields()
                    t.append(try Self.field(l))
                    trailers = t
                }
            case .untilClose:
                if available == 0, try await !fill("the response body", deadline: deadline, timeout: timeout) {
                    body = nil
                    return nil
                }
                return take(available)
            }
        }
        return nil
    }

    /// The trailer fields of the last response whose body was read to its
    /// end (nil without any).
    public var trailerFields: HTTPFields? { trailers }

    // MARK: helpers

    static func serialize(_ r: HTTPRequest, hasBody: Bool, bodyCount: Int, defaultAuthority: String) -> [UInt8] {
        let target = r.path ?? r.authority ?? "/"
        var text = "\(r.method.rawValue) \(target) HTTP/1.1\r\n"
        let host = HTTPField.Name("Host")!
        if r.headerFields[host] == nil { text += "Host: \(r.authority ?? defaultAuthority)\r\n" }
        for f in r.headerFields { text += "\(f.name.rawName): \(f.value)\r\n" }
        if hasBody, r.headerFields[.contentLength] == nil, r.headerFields[.transferEncoding] == nil {
            text += "Content-Length: \(bodyCount)\r\n"
        }
        return Array((text + "\r\n").utf8)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0], hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    static func show(_ b: ArraySlice<UInt8>) -> String {
        String(decoding: b.prefix(300), as: UTF8.self).debugDescription
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var s = self[...]
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}

/// A whole response: its head and its body.
public struct VigilTestResponse: Sendable {
    /// Status and header fields.
    public var head: HTTPResponse
    /// The body, dechunked.
    public var body: [UInt8]
    /// The trailer fields of a chunked body, if it had any.
    public var trailerFields: HTTPFields?

    public init(head: HTTPResponse, body: [UInt8], trailerFields: HTTPFields? = nil) {
        self.head = head
        self.body = body
        self.trailerFields = trailerFields
    }

    /// `head.status`.
    public var status: HTTPResponse.Status { head.status }
    /// `head.headerFields`.
    public var headerFields: HTTPFields { head.headerFields }
    /// The body as UTF-8 text.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A response whose body is read as it arrives.
public struct VigilTestStreamedResponse: Sendable {
    public var head: HTTPResponse
    public var body: Body

    public var status: HTTPResponse.Status { head.status }

    /// The body's pieces as they arrive (chunked framing removed); each
    /// `next()` waits at most the timeout the response was asked with.
    public struct Body: AsyncSequence, Sendable {
        public typealias Element = [UInt8]
        let client: VigilTestClient
        let timeout: Duration

        public struct AsyncIterator: AsyncIteratorProtocol {
            let client: VigilTestClient
            let timeout: Duration
            public mutating func next() async throws -> [UInt8]? {
                try await client.nextChunk(deadline: .now + timeout, timeout: timeout)
            }
        }

        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(client: client, timeout: timeout)
        }

        /// The rest of the body, at most `limit` bytes (throws past it).
        public func collect(upTo limit: Int = .max) async throws -> [UInt8] {
            var all: [UInt8] = []
            for try await chunk in self {
                all += chunk
                if all.count > limit {
                    throw VigilTestingError(.invalidUse, "the body passed \(limit) bytes")
                }
            }
            return all
        }
    }
}
