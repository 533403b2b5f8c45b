#!/usr/bin/env python3
"""gen_frame_corpus.py - writes the seed corpus of fuzz_frame.c into
tests/fuzz/corpus/frame/ (or the directory given): valid frames of every
type, streams of several frames, and broken frames of every kind the codec
refuses, encoded here independently of src/net/frame.c from the format in
src/net/net.h.  Each file starts with fuzz_frame.c's mode byte (0 stream,
1 stream with CRCs fixed by the target, 2 type + raw payload).

Usage: tests/fuzz/gen_frame_corpus.py [OUTDIR]
"""
import os
import struct
import sys
import zlib

HELLO, WELCOME, REFUSE, DATA, ACK, CREDIT, PULL, PING, PONG, BYE = range(1, 11)


def frame(ftype, payload, magic=b"IF", version=1, length=None, crc=None):
    """One frame: 12-byte little-endian header, then the payload."""
    if length is None:
        length = len(payload)
    if crc is None:
        crc = zlib.crc32(payload)
    return magic + bytes([version, ftype]) + struct.pack("<II", length,
                                                         crc) + payload


def hello(role, name, flow_hash=0x1122334455667788, last=0):
    return bytes([role, len(name)]) + name + struct.pack("<QQ", flow_hash,
                                                         last)


def msg(seq, topic=b"co2", data=b'{"co2":612}', kind=0, origin=3, stage=2,
        topic_len=None, length=None):
    if topic_len is None:
        topic_len = len(topic)
    if length is None:
        length = len(data)
    return (struct.pack("<QIQQHBB", seq, origin, seq + 1000,
                        1700000000000000000 + seq, stage, kind, topic_len) +
            topic + struct.pack("<I", length) + data)


def data(msgs, count=None):
    if count is None:
        count = len(msgs)
    return struct.pack("<I", count) + b"".join(msgs)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "frame")
    os.makedirs(out, exist_ok=True)
    seeds = {}

    def stream(name, *frames):
        seeds[name] = b"\x00" + b"".join(frames)

    def fixed(name, *frames):
        seeds[name] = b"\x01" + b"".join(frames)

    def direct(name, ftype, payload):
        seeds[name] = b"\x02" + bytes([ftype]) + payload

    # Valid frames, one per type, and a conversation.
    h = hello(2, b"edge-1", last=41)
    stream("ok_hello", frame(HELLO, h))
    stream("ok_welcome", frame(WELCOME, hello(3, b"cloud", last=7)))
    stream("ok_hello_utf8_max", frame(HELLO, hello(1, "pièce-".encode() +
                                                   b"x" * 56)))
    stream("ok_refuse", frame(REFUSE, b"\x1fcertificate role device refused"))
    stream("ok_refuse_empty", frame(REFUSE, b"\x00"))
    stream("ok_data_one", frame(DATA, data([msg(1)])))
    stream("ok_data_empty", frame(DATA, data([])))
    stream("ok_data_mixed", frame(DATA, data([
        msg(10), msg(11, topic=b"", data=b""), msg(12, kind=1, data=b"blink"),
        msg(13, topic=b"t" * 31, data=bytes(range(256)))])))
    stream("ok_ack", frame(ACK, struct.pack("<Q", 12345)))
    stream("ok_credit", frame(CREDIT, struct.pack("<II", 2, 64)))
    stream("ok_pull", frame(PULL, struct.pack("<I", 1)))
    stream("ok_ping_pong", frame(PING, struct.pack("<Q", 99)),
           frame(PONG, struct.pack("<Q", 99)))
    stream("ok_bye", frame(BYE, b""))
    stream("ok_conversation", frame(HELLO, h), frame(CREDIT,
           struct.pack("<II", 0, 10)), frame(DATA, data([msg(1), msg(2)])),
           frame(ACK, struct.pack("<Q", 2)), frame(PING, struct.pack("<Q", 1)),
           frame(BYE, b""))
    stream("ok_then_partial", frame(ACK, struct.pack("<Q", 1)),
           frame(DATA, data([msg(1)]))[:30])

    # Header errors.
    stream("bad_magic", frame(PING, struct.pack("<Q", 1), magic=b"AB"))
    stream("bad_version", frame(PING, struct.pack("<Q", 1), version=7))
    stream("bad_type", frame(42, b""))
    stream("bad_type_zero", frame(0, b""))
    stream("bad_length_huge", frame(DATA, b"", length=2000000))
    stream("bad_length_ping", frame(PING, b"\x00" * 3))
    stream("bad_length_hello", frame(HELLO, b"\x01" * 5))
    stream("bad_length_bye", frame(BYE, b"\x00"))
    stream("bad_crc", frame(ACK, struct.pack("<Q", 5), crc=0xDEADBEEF))
    stream("bad_after_good", frame(BYE, b""), b"garbage!" * 3)
    stream("truncated_header", frame(PULL, struct.pack("<I", 1))[:7])

    # Payload errors behind valid CRCs (mode 1 fixes the CRC fields).
    fixed("hello_bad_role", frame(HELLO, hello(9, b"dev"), crc=0))
    fixed("hello_empty_name", frame(HELLO, hello(1, b""), crc=0))
    fixed("hello_not_utf8", frame(HELLO, hello(1, b"a\xc3("), crc=0))
    fixed("hello_nul", frame(HELLO, hello(1, b"a\x00b"), crc=0))
    fixed("hello_trailing", frame(HELLO, hello(1, b"dev") + b"\x00\x00",
                                  crc=0))
    fixed("refuse_not_utf8", frame(REFUSE, b"\x03a\xe9z", crc=0))
    fixed("refuse_truncated", frame(REFUSE, b"\x0aabc", crc=0))
    fixed("data_topic_too_long", frame(DATA, data(
        [msg(1), msg(2), msg(3), msg(4, topic=b"x" * 40)]), crc=0))
    fixed("data_trailing", frame(DATA, data(
        [msg(i) for i in range(1, 6)]) + b"\xaa\xbb", crc=0))
    fixed("data_count_high", frame(DATA, data([msg(1), msg(2)], count=3),
                                   crc=0))
    fixed("data_count_huge", frame(DATA, data([msg(1)], count=0xFFFFFFFF),
                                   crc=0))
    fixed("data_bad_kind", frame(DATA, data([msg(1, kind=7)]), crc=0))
    fixed("data_len_too_big", frame(DATA, data([msg(1, length=70000)]),
                                    crc=0))
    fixed("data_truncated_data", frame(DATA, data([msg(1, length=50)]),
                                       crc=0))
    fixed("data_topic_not_utf8", frame(DATA, data([msg(1, topic=b"\xff")]),
                                       crc=0))
    fixed("credit_then_ping", frame(CREDIT, struct.pack("<II", 1, 1), crc=0),
          frame(PING, struct.pack("<Q", 3), crc=0))

    # Raw payloads straight into the decoders.
    direct("raw_hello", HELLO, h)
    direct("raw_hello_short", HELLO, h[:10])
    direct("raw_data", DATA, data([msg(1), msg(2, kind=1)]))
    direct("raw_data_short", DATA, b"\x01\x00")
    direct("raw_refuse", REFUSE, b"\x02ok")
    direct("raw_credit_long", CREDIT, b"\x00" * 12)
    direct("raw_pull", PULL, b"\x07\x00\x00\x00")
    direct("raw_ack_short", ACK, b"\x01\x02")
    direct("raw_type_200", 200, b"\x00" * 8)

    for name, blob in sorted(seeds.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
    print("wrote %d seeds (%d bytes) to %s" % (
        len(seeds), sum(len(b) for b in seeds.values()), out))


if __name__ == "__main__":
    main()
