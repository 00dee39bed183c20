// Route templates as swift-openapi-generator registers them
// ("/files/{name}.zip"), and matching a request path against them.

/// A parsed route template: its segments, each a run of literal text and
/// `{parameter}` placeholders.
struct PathTemplate: Sendable, Hashable, CustomStringConvertible {
    enum Piece: Sendable, Hashable {
        case literal(String)
        case parameter(String)
    }

    /// One path segment of the template (between two `/`).
    struct Segment: Sendable, Hashable {
        let pieces: [Piece]

        /// 0: all literal, 1: literal text and parameters, 2: one parameter.
        /// Lower is more specific and is tried first.
        var rank: Int {
            if pieces.allSatisfy({ if case .literal = $0 { true } else { false } }) { return 0 }
            return pieces.count == 1 ? 2 : 1
        }

        var literalLength: Int {
            pieces.reduce(0) { n, p in if case .literal(let s) = p { n + s.utf8.count } else { n } }
        }
    }

    let text: String
    let segments: [Segment]

    var description: String { text }

    /// The template with its parameter names left out: two templates with
    /// the same shape match the same paths.
    var shape: String {
        segments.map { s in
            s.pieces.map { p in if case .literal(let l) = p { l } else { "{}" } }.joined()
        }.joined(separator: "/")
    }

    /// Parses `/a/{b}/c{d}.e`: a leading `/`, segments separated by `/`,
    /// parameters in braces. Throws `RouteError` for unbalanced braces, an
    /// empty or repeated parameter name, or two parameters without literal
    /// text between them (where one ends and the next starts is then
    /// undecidable).
    init(_ text: String) throws {
        guard text.hasPrefix("/") else { throw RouteError.invalidTemplate(text, "does not start with /") }
        self.text = text
        var names = Set<String>()
        var segments: [Segment] = []
        for raw in text.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            var pieces: [Piece] = []
            var rest = raw[...]
            while !rest.isEmpty {
                if rest.first == "{" {
                    guard let close = rest.firstIndex(of: "}") else {
                        throw RouteError.invalidTemplate(text, "unbalanced {")
                    }
                    let name = String(rest[rest.index(after: rest.startIndex)..<close])
                    guard !name.isEmpty, !name.contains("{") else {
                        throw RouteError.invalidTemplate(text, "bad parameter name {\(name)}")
                    }
                    guard names.insert(name).inserted else {
                        throw RouteError.invalidTemplate(text, "parameter {\(name)} appears twice")
                    }
                    if case .parameter = pieces.last {
                        throw RouteError.invalidTemplate(text, "two parameters with nothing between them")
                    }
                    pieces.append(.parameter(name))
                    rest = rest[rest.index(after: close)...]
                } else {
                    let end = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) ?? rest.endIndex
                    if end < rest.endIndex, rest[end] == "}" {
                        throw RouteError.invalidTemplate(text, "unbalanced }")
                    }
                    pieces.append(.literal(PathTemplate.normalized(rest[..<end])))
                    rest = rest[end...]
                }
            }
            segments.append(Segment(pieces: pieces))
        }
        self.segments = segments
    }

    /// Matches the request path's segments (split and normalized by
    /// `PathTemplate.split`), returning the parameters' values as they
    /// appear in the path (still percent-encoded, as swift-openapi-runtime
    /// expects: the generated code decodes them), or nil.
    func match(_ path: [Substring]) -> [String: Substring]? {
        guard path.count == segments.count else { return nil }
        var captures: [String: Substring] = [:]
        for (segment, value) in zip(segments, path) {
            guard Self.match(segment.pieces[...], value, into: &captures) else { return nil }
        }
        return captures
    }

    /// Matches one segment, in linear time (no backtracking: the target
    /// is the client's): a trailing literal piece is matched at the
    /// segment's end, then left to right each literal piece exactly and
    /// each parameter as a non-empty run up to the first occurrence of the
    /// literal text after it (`{a}-{b}` on `x-y-z` gives `x` and `y-z`;
    /// `{name}.zip` on `a.b.zip` gives `a.b`).
    private static func match(
        _ pieces: ArraySlice<Piece>, _ value: Substring, into captures: inout [String: Substring]
    ) -> Bool {
        var pieces = pieces
        var value = value
        if pieces.count > 1, case .literal(let suffix)? = pieces.last {
            guard value.utf8.count > suffix.utf8.count, value.utf8.reversed().starts(with: suffix.utf8.reversed())
            else { return false }
            value = Substring(value.utf8.dropLast(suffix.utf8.count))
            pieces = pieces.dropLast()
        }
        while let piece = pieces.popFirst() {
            switch piece {
            case .literal(let literal):
                guard value.utf8.starts(with: literal.utf8) else { return false }
                value = Substring(value.utf8.dropFirst(literal.utf8.count))
            case .parameter(let name):
                guard case .literal(let next)? = pieces.first else {
                    // The segment's last piece: the rest of it.
                    guard !value.isEmpty else { return false }
                    captures[name] = value
                    value = value[value.endIndex...]
                    continue
                }
                guard !value.isEmpty, let end = firstRange(of: Array(next.utf8), in: value, after: value.startIndex)
                else { return false }
                captures[name] = value[..<end]
                value = value[end...]
            }
        }
        return value.isEmpty
    }

    /// Where `needle` first starts in `value`, after `start` (a parameter
    /// takes at least one byte), or nil.
    private static func firstRange(of needle: [UInt8], in value: Substring, after start: String.Index) -> String.Index? {
        let bytes = value.utf8
        var i = bytes.index(after: start)
        while i < bytes.endIndex {
            if bytes[i...].starts(with: needle) { return i }
            i = bytes.index(after: i)
        }
        return nil
    }

    /// Orders templates most specific first: segment by segment, literal
    /// segments before mixed ones (more literal text first) before a bare
    /// parameter, so `/files/list` is tried before `/files/{name}.zip`,
    /// which is tried before `/files/{name}` (as OpenAPI says: concrete
    /// paths match before templated ones).
    static func moreSpecific(_ a: PathTemplate, _ b: PathTemplate) -> Bool {
        for (x, y) in zip(a.segments, b.segments) {
            if x.rank != y.rank { return x.rank < y.rank }
            if x.literalLength != y.literalLength { return x.literalLength > y.literalLength }
        }
        return a.text < b.text
    }

    /// The request target's path (query and fragment cut off), split into
    /// segments after the leading `/`, with percent-encoded unreserved
    /// characters decoded (RFC 3986 6.2.2.2: `/fil%65s` is `/files`).
    /// Everything else stays encoded: `%2F` does not split a segment, and
    /// the parameters reach the generated code encoded. nil for a target
    /// that is not a path (`*`, CONNECT's authority).
    static func split(_ target: String) -> [Substring]? {
        let end = target.firstIndex(where: { $0 == "?" || $0 == "#" }) ?? target.endIndex
        let path = target[..<end]
        guard path.first == "/" else { return nil }
        let normalizedPath = path.contains("%") ? Substring(normalized(path)) : path
        return normalizedPath.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
    }

    /// `text` with `%XX` decoded where XX is an unreserved character
    /// (ALPHA, DIGIT, `-`, `.`, `_`, `~`); other escapes are kept, their
    /// hex digits upper-cased.
    static func normalized(_ text: Substring) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return String(text) }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) {
                let b = hi << 4 | lo
                if isUnreserved(b) {
                    out.append(b)
                } else {
                    out.append(contentsOf: [bytes[i], upperHex(hi), upperHex(lo)])
                }
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether a percent-encoded parameter decodes: every `%` followed by
    /// two hex digits (RFC 3986 2.1), the decoded bytes UTF-8.
    static func isDecodable(_ text: Substring) -> Bool {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return true }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(text.utf8.count)
        var bytes = text.utf8.makeIterator()
        while let b = bytes.next() {
            guard b == UInt8(ascii: "%") else {
                decoded.append(b)
                continue
            }
            guard let h = bytes.next(), let hi = hexValue(h), let l = bytes.next(), let lo = hexValue(l)
            else { return false }
            decoded.append(hi << 4 | lo)
        }
        return String(validating: decoded, as: UTF8.self) != nil
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func upperHex(_ v: UInt8) -> UInt8 {
        v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "A") + v - 10
    }

    private static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default: false
        }
    }
}

/// Why `VigilTransport.register` refused a route.
public enum RouteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The template is malformed: the template, and what is wrong with it.
    case invalidTemplate(String, String)
    /// A handler for this method and a template of the same shape is
    /// registered already.
    case duplicate(method: String, path: String)

    public var description: String {
        switch self {
        case .invalidTemplate(let t, let why): "invalid route template \(t): \(why)"
        case .duplicate(let m, let p): "a handler for \(m) \(p) is registered already"
        }
    }
}
