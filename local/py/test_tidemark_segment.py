"""The independent Python reader against segments the Rust writers wrote, one per format
version (shared/tests/fixtures): both readers must give the same records, which are the ones
`fixture_records` in shared/src/segment/tests.rs builds."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tidemark_segment  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tests", "fixtures")


def record(offset, **changes):
    base = dict(
        offset=offset,
        timestamp=1_700_000_000_000 + offset,
        timestamp_type="CREATE_TIME",
        key=f"key-{offset}".encode(),
        value=b"v" * 64,
        headers=[("trace", b"abc")],
    )
    base.update(changes)
    return base


EXPECTED = [
    record(1_000, key=None, value=None, headers=[]),
    record(1_001, key=b"", value=b"", headers=[("dup", b"1"), ("dup", b"2"), ("null", None), ("", b"")]),
    record(1_005, timestamp=1_600_000_000_000, timestamp_type="LOG_APPEND_TIME", value=b"\xff" * 300),
    record(1_006, timestamp=-1, timestamp_type="NO_TIMESTAMP_TYPE"),
    record(70_000),
]

for version in (1, 2):
    with open(os.path.join(FIXTURES, f"segment-v{version}.seg.zst"), "rb") as fixture:
        data = fixture.read()
    header, records = tidemark_segment.read_segment(data)
    assert records == EXPECTED, f"version {version}: {records}"
    assert header["first_offset"] == 1_000 and header["last_offset"] == 70_000, header
    # Any changed byte of the records is caught.
    damaged = bytearray(data)
    damaged[-40] ^= 0x01
    try:
        tidemark_segment.read_segment(bytes(damaged))
    except tidemark_segment.SegmentError:
        pass
    else:
        raise AssertionError(f"version {version}: a damaged segment was read")
print("segment fixtures of versions 1 and 2 read back their records")
