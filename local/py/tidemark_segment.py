"""An independent reader of Tidemark segments (format versions 1 and 2), written from
docs/segment-format.md.

It shares no code with the Rust implementation, so tests that read segments with it check the
format against its specification, not the writer against itself.
"""
import io
import struct

import crc32c
import xxhash
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"TDMK"
VERSIONS = (1, 2)
TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME", 2: "NO_TIMESTAMP_TYPE"}
FLAG_ENCRYPTED = 0x01
FLAG_WRITE_MARKS = 0x02
FLAG_KEY_FILTER = 0x04
# The records are shredded: a keyed record's key is its key id and its value the sealed fields.
FLAG_SHREDDED = 0x08
MASK64 = (1 << 64) - 1


class SegmentError(Exception):
    pass


def _read_exact(stream, n, what):
    # A decompressing stream may return fewer bytes than asked for before its end.
    chunks, remaining = [], n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise SegmentError(f"truncated inside {what}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_segment(data: bytes, unwrap_key=None):
    """Returns (header, records). Records are dicts with bytes or None for nullable fields.

    A sealed segment needs `unwrap_key(wrapped_key) -> 32-byte data key` (KMS Decrypt).
    """
    if len(data) < 8 or data[:4] != MAGIC:
        raise SegmentError("not a tidemark segment")
    version, header_len = struct.unpack(">HH", data[4:8])
    if version not in VERSIONS:
        raise SegmentError(f"unsupported version {version}")
    if len(data) < header_len:
        raise SegmentError("truncated header")
    head = data[:header_len]
    (stored_header_crc,) = struct.unpack(">I", head[-4:])
    if crc32c.crc32c(head[:-4]) != stored_header_crc:
        raise SegmentError("header checksum mismatch")
    compression, flags, topic_len = struct.unpack(">BBH", head[8:12])
    topic = head[12 : 12 + topic_len].decode("utf-8")
    fixed_end = 12 + topic_len + 64
    fields = struct.unpack(">iqqIqqQQII", head[12 + topic_len : fixed_end])
    header = dict(
        topic=topic,
        partition=fields[0],
        first_offset=fields[1],
        last_offset=fields[2],
        record_count=fields[3],
        min_timestamp=fields[4],
        max_timestamp=fields[5],
        uncompressed_len=fields[6],
        body_len=fields[7],
        records_crc32c=fields[8],
        body_crc32c=fields[9],
        compression={0: "none", 1: "zstd"}.get(compression, compression),
    )
    if flags & ~(FLAG_ENCRYPTED | FLAG_WRITE_MARKS | FLAG_KEY_FILTER | FLAG_SHREDDED):
        raise SegmentError("unknown flags")
    position = fixed_end
    envelope = None
    if flags & FLAG_ENCRYPTED:
        (wrapped_len,) = struct.unpack(">H", head[position : position + 2])
        wrapped = head[position + 2 : position + 2 + wrapped_len]
        nonce = head[position + 2 + wrapped_len : position + 14 + wrapped_len]
        envelope = dict(wrapped_key=wrapped, nonce=nonce)
        position += 14 + wrapped_len
    marks = []
    if flags & FLAG_WRITE_MARKS:
        (count,) = struct.unpack(">H", head[position : position + 2])
        position += 2
        for _ in range(count):
            marks.append(struct.unpack(">qq", head[position : position + 16]))
            position += 16
        if not marks or marks[-1][0] != header["last_offset"]:
            raise SegmentError("write marks must end at the last offset")
    key_filter = None
    if flags & FLAG_KEY_FILTER:
        key_filter = struct.unpack(">II", head[position : position + 8])
        position += 8
    if position + 4 != header_len:
        raise SegmentError("the header's sections do not fill its length")
    header["write_marks"] = marks
    header["encrypted"] = envelope is not None
    header["shredded"] = bool(flags & FLAG_SHREDDED)
    body = data[header_len:]
    filter_bytes = None
    if key_filter is not None and envelope is None:
        # A plain segment's key filter follows its body.
        filter_len, filter_crc = key_filter
        if len(body) < filter_len:
            raise SegmentError("truncated key filter")
        body, filter_bytes = body[: len(body) - filter_len], body[len(body) - filter_len :]
        if crc32c.crc32c(filter_bytes) != filter_crc:
            raise SegmentError("key filter checksum mismatch")
    if len(body) != header["body_len"]:
        raise SegmentError(f"body is {len(body)} bytes, header says {header['body_len']}")
    if crc32c.crc32c(body) != header["body_crc32c"]:
        raise SegmentError("body checksum mismatch")
    if envelope is not None:
        if unwrap_key is None:
            raise SegmentError("the segment is sealed and no key service was given")
        # The tag authenticates the header from the magic through max_timestamp.
        authenticated = data[: 12 + topic_len + 40]
        try:
            body = AESGCM(unwrap_key(envelope["wrapped_key"])).decrypt(envelope["nonce"], body, authenticated)
        except Exception as error:
            raise SegmentError(f"the sealed body does not open: {error!r}") from error
        if key_filter is not None:
            # Sealed, the key filter is the end of the plaintext.
            filter_len, filter_crc = key_filter
            body, filter_bytes = body[: len(body) - filter_len], body[len(body) - filter_len :]
            if crc32c.crc32c(filter_bytes) != filter_crc:
                raise SegmentError("key filter checksum mismatch")
    if header["compression"] == "zstd":
        stream = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=False)
    elif header["compression"] == "none":
        stream = io.BytesIO(body)
    else:
        raise SegmentError(f"unknown compression {compression}")

    records, checksum, consumed = [], 0, 0
    # Version 2 frames are relative to the record before; the first to (first_offset - 1, 0).
    previous = (header["first_offset"] - 1, 0)
    for _ in range(header["record_count"]):
        if version == 1:
            length_bytes = _read_exact(stream, 4, "record length")
            (frame_len,) = struct.unpack(">I", length_bytes)
        else:
            frame_len, length_bytes = _read_varint_prefix(stream)
        frame = _read_exact(stream, frame_len, "record")
        checksum = crc32c.crc32c(length_bytes + frame, checksum)
        consumed += len(length_bytes) + frame_len
        record = _parse_frame(frame) if version == 1 else _parse_compact_frame(frame, previous)
        previous = (record["offset"], record["timestamp"])
        records.append(record)
    if stream.read(1):
        raise SegmentError("bytes after the last record")
    if consumed != header["uncompressed_len"] or checksum != header["records_crc32c"]:
        raise SegmentError("records checksum or length mismatch")
    header["key_filter_bytes"] = None if filter_bytes is None else len(filter_bytes)
    if filter_bytes is not None:
        for record in records:
            if record["key"] is not None and not key_filter_may_contain(filter_bytes, record["key"]):
                raise SegmentError(f"the key filter misses the key of offset {record['offset']}")
    return header, records


def key_filter_may_contain(filter_bytes: bytes, key: bytes) -> bool:
    """Binary fuse lookup over XXH3-64 of the key, as docs/segment-format.md#key-filter says."""
    if not filter_bytes:
        return False
    seed, length, mask, count_length = struct.unpack("<QIII", filter_bytes[:20])
    fingerprints = filter_bytes[20:]
    hash_ = (xxhash.xxh3_64_intdigest(key) + seed) & MASK64
    for shift, multiplier in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
        hash_ = ((hash_ ^ (hash_ >> shift)) * multiplier) & MASK64
    hash_ ^= hash_ >> 33
    fingerprint = (hash_ ^ (hash_ >> 32)) & 0xFF
    h0 = (hash_ * count_length) >> 64
    h1 = (h0 + length) ^ ((hash_ >> 18) & mask)
    h2 = (h0 + 2 * length) ^ (hash_ & mask)
    return fingerprint ^ fingerprints[h0] ^ fingerprints[h1] ^ fingerprints[h2] == 0


def _varint(view, what):
    value = 0
    for position in range(10):
        (byte,) = _read_exact(view, 1, what)
        value |= (byte & 0x7F) << (7 * position)
        if not byte & 0x80:
            if value > MASK64:
                raise SegmentError(f"{what} overflows 64 bits")
            return value
    raise SegmentError(f"{what} is longer than 10 bytes")


def _read_varint_prefix(stream):
    """A version 2 frame length: (value, the bytes it took)."""
    taken = bytearray()

    class Recording:
        def read(self, n):
            chunk = stream.read(n)
            taken.extend(chunk)
            return chunk

    return _varint(Recording(), "record length"), bytes(taken)


def _record(view, offset, timestamp, type_code, key, value, headers):
    """A parsed frame's record; the frame must hold nothing after its fields."""
    if view.read(1):
        raise SegmentError("bytes after the record's fields")
    return dict(
        offset=offset,
        timestamp=timestamp,
        timestamp_type=TIMESTAMP_TYPES[type_code],
        key=key,
        value=value,
        headers=headers,
    )


def _parse_compact_frame(frame, previous):
    view = io.BytesIO(frame)
    offset = previous[0] + 1 + _varint(view, "offset delta")
    zigzag = _varint(view, "timestamp delta")
    delta = (zigzag >> 1) ^ -(zigzag & 1)
    # Timestamps add with 64-bit wraparound, as the writer subtracted them.
    timestamp = (previous[1] + delta + (1 << 63)) % (1 << 64) - (1 << 63)
    (type_code,) = _read_exact(view, 1, "timestamp type")

    def nullable(what):
        n = _varint(view, what)
        return None if n == 0 else _read_exact(view, n - 1, what)

    key, value = nullable("key"), nullable("value")
    headers = []
    for _ in range(_varint(view, "header count")):
        header_key = _read_exact(view, _varint(view, "header key length"), "header key").decode("utf-8")
        headers.append((header_key, nullable("header value")))
    return _record(view, offset, timestamp, type_code, key, value, headers)


def _parse_frame(frame):
    view = io.BytesIO(frame)
    offset, timestamp, type_code = struct.unpack(">qqB", _read_exact(view, 17, "record fields"))

    def nullable():
        (n,) = struct.unpack(">i", _read_exact(view, 4, "length"))
        return None if n == -1 else _read_exact(view, n, "bytes")

    key, value = nullable(), nullable()
    (count,) = struct.unpack(">I", _read_exact(view, 4, "header count"))
    headers = []
    for _ in range(count):
        (key_len,) = struct.unpack(">I", _read_exact(view, 4, "header key length"))
        header_key = _read_exact(view, key_len, "header key").decode("utf-8")
        headers.append((header_key, nullable()))
    return _record(view, offset, timestamp, type_code, key, value, headers)
