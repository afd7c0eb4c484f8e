#!/usr/bin/env python3
"""make_corpus.py - writes the seed corpora of tests/fuzz/: fuzz_wire.c's into corpus/wire/,
and with --seeds those of the engine targets (peer, llv2, hmss, edp, kingdom, crypto, admin).

Frames are encoded here by hand (protobuf varints and length-delimited fields), independently
of protobuf-c, from proto/wire.proto and proto/control.proto.  Each corpus file is
fuzz_wire.c's input: byte 0 = feed slice (0 = all at once), byte 1 = max_frame selector
(even = default, odd = 256), then the connection's bytes.

The engine targets' seeds need real keys, signatures, ciphertexts and stage outputs, so a C
program makes them with the fixture's keys (fuzz_seeds.c, built in every build dir):
    tests/fuzz/make_corpus.py --seeds build-fz/tests/fuzz/fuzz_seeds
Run from anywhere; rewrites the files it owns (seed-*), leaves others (crashers, minimised
inputs) alone.
"""
import argparse
import hashlib
import os
import subprocess
import struct


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, n):
    return varint(field << 3) + varint(n)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


CALL_START, MESSAGE, HALF_CLOSE, STATUS, CREDIT, CANCEL, PING = range(1, 8)


def frame(kind, version=1, method=None, request_id=None, deadline=None, message=None,
          status=None, credit=None):
    body = f_varint(1, version) + f_varint(2, kind)
    if method is not None:
        body += f_bytes(3, method)
    if request_id is not None:
        body += f_bytes(4, request_id)
    if deadline is not None:
        body += f_varint(5, deadline)
    if message is not None:
        body += f_bytes(6, message)
    if status is not None:
        code, msg, reason = status
        body += f_bytes(7, f_varint(1, code) + f_bytes(2, msg) + f_bytes(3, reason))
    if credit is not None:
        body += f_varint(8, credit)
    return struct.pack(">I", len(body)) + body


def adv_header(name, description=1):
    llv2 = f_varint(1, description)
    return f_bytes(1, f_bytes(1, name) + f_bytes(2, llv2))


def adv_chunk(data):
    return f_bytes(2, f_bytes(1, data))


def adv_trailer(body, length=None):
    h = hashlib.sha256(body).digest()
    return f_bytes(15, f_bytes(1, h) + f_varint(2, len(body) if length is None else length))


METHOD = "/wfa.measurement.system.v1alpha.ComputationControl/AdvanceComputation"


def upload(body, chunk, trailer_len=None):
    s = frame(CALL_START, method=METHOD, request_id="seed-request-1", deadline=1700000000000)
    s += frame(MESSAGE, message=adv_header("computations/AAAAAAAAAHs"))
    for i in range(0, len(body), chunk):
        s += frame(MESSAGE, message=adv_chunk(body[i:i + chunk]))
    s += frame(MESSAGE, message=adv_trailer(body, trailer_len))
    s += frame(HALF_CLOSE)
    return s


def main():
    ap = argparse.ArgumentParser(description="write the seed corpora of tests/fuzz/")
    ap.add_argument("--seeds", metavar="FUZZ_SEEDS",
                    help="the built fuzz_seeds program: also write the engine targets' seeds")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    if args.seeds:
        subprocess.run([args.seeds, os.path.join(here, "corpus")], check=True)
    out = os.path.join(here, "corpus", "wire")
    os.makedirs(out, exist_ok=True)
    body = bytes((i * 37 + 11) & 0xFF for i in range(3000))
    seeds = {
        "call-start": b"\0\0" + frame(CALL_START, method=METHOD, request_id="r1", deadline=5),
        "message": b"\0\0" + frame(MESSAGE, message=b"\x0a\x03abc"),
        "message-empty": b"\0\0" + frame(MESSAGE, message=b""),
        "half-close": b"\0\0" + frame(HALF_CLOSE),
        "status-ok": b"\0\0" + frame(STATUS, status=(0, "", "")),
        "status-reason": b"\0\0" + frame(STATUS, status=(9, "peer not ready",
                                                         "STAGE_NOT_READY")),
        "credit": b"\0\0" + frame(CREDIT, credit=16),
        "cancel": b"\0\0" + frame(CANCEL),
        "ping": b"\0\0" + frame(PING),
        "upload": b"\0\0" + upload(body, 1000),
        "upload-bytewise": b"\x01\0" + upload(body[:300], 100),
        "upload-slices": b"\x07\0" + upload(body, 999),
        "upload-empty-body": b"\0\0" + upload(b"", 1000),
        "upload-length-mismatch": b"\0\0" + upload(body, 1000, trailer_len=2999),
        "unary-call": b"\x03\0" + frame(CALL_START, method="/a.B/C", request_id="x")
        + frame(MESSAGE, message=f_bytes(1, "computations/AAAAAAAAAHs"))
        + frame(HALF_CLOSE) + frame(MESSAGE, message=b"") + frame(STATUS, status=(0, "", "")),
        "truncated": b"\0\0" + frame(MESSAGE, message=b"0123456789")[:-4],
        "oversize-prefix": b"\0\0" + struct.pack(">I", 1 << 30) + b"junk",
        "oversize-small-limit": b"\0\x01" + frame(MESSAGE, message=b"x" * 300),
        "zero-length": b"\0\0" + struct.pack(">I", 0),
        "bad-version": b"\0\0" + frame(PING, version=2),
        "bad-kind": b"\0\0" + frame(9),
        "negative-kind": b"\0\0" + frame((1 << 64) - 1),
        "bad-method": b"\0\0" + frame(CALL_START, method="/NoDot/M", request_id="r"),
        "zero-credit": b"\0\0" + frame(CREDIT, credit=0),
        "status-bad-code": b"\0\0" + frame(STATUS, status=(17, "", "")),
        "garbage": b"\0\0" + bytes((i * 151 + 7) & 0xFF for i in range(200)),
        "garbage-body": b"\0\0" + struct.pack(">I", 8) + b"\xff" * 8,
    }
    for name, data in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as fp:
            fp.write(data)
    print(f"wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main()
