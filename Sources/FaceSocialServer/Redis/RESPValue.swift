import NIOCore

/// A value of the Redis serialization protocol (RESP2).
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8]?)
    case array([RESPValue]?)

    public var string: String? {
        switch self {
        case .simpleString(let s): s
        case .bulkString(let bytes?): String(decoding: bytes, as: UTF8.self)
        case .integer(let n): String(n)
        default: nil
        }
    }

    public var integer: Int64? {
        switch self {
        case .integer(let n): n
        case .bulkString(let bytes?): Int64(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    public var bytes: [UInt8]? {
        if case .bulkString(let bytes) = self { return bytes }
        return nil
    }

    public var array: [RESPValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var isNull: Bool { self == .bulkString(nil) || self == .array(nil) }
}

/// Encodes a command as a RESP array of bulk strings.
struct RESPCommandEncoder: MessageToByteEncoder {
    typealias OutboundIn = [[UInt8]]

    func encode(data: [[UInt8]], out: inout ByteBuffer) {
        out.writeString("*\(data.count)\r\n")
        for argument in data {
            out.writeString("$\(argument.count)\r\n")
            out.writeBytes(argument)
            out.writeString("\r\n")
        }
    }
}

enum RESPParseError: Error {
    case malformed(String)
}

/// Decodes RESP2 replies; waits for more bytes when a reply is incomplete.
struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var copy = buffer
        guard let value = try Self.parse(&copy) else { return .needMoreData }
        buffer = copy
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    /// One complete value from the front of `buffer`, or nil when more bytes are needed.
    static func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self) else { return nil }
        guard let line = readLine(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"): return .simpleString(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let n = Int64(line) else { throw RESPParseError.malformed("integer \(line)") }
            return .integer(n)
        case UInt8(ascii: "$"):
            guard let length = Int(line) else { throw RESPParseError.malformed("bulk length \(line)") }
            if length < 0 { return .bulkString(nil) }
            guard buffer.readableBytes >= length + 2, let bytes = buffer.readBytes(length: length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(line) else { throw RESPParseError.malformed("array length \(line)") }
            if count < 0 { return .array(nil) }
            var items: [RESPValue] = []
            items.reserveCapacity(count)
            for _ in 0..<count {
                guard let item = try parse(&buffer) else { return nil }
                items.append(item)
            }
            return .array(items)
        default:
            throw RESPParseError.malformed("unknown type byte \(type)")
        }
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")), view.index(after: cr) < view.endIndex,
            view[view.index(after: cr)] == UInt8(ascii: "\n")
        else { return nil }
        let length = cr - view.startIndex
        let line = buffer.readString(length: length)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}
