#!/usr/bin/env python3
"""Writes the seed corpus of agent_frame_fuzz (tests/fuzz/agent/corpus/agent_frame_fuzz/).

Each seed is: one byte choosing the feed chunk size (value + 1), then a byte stream of frames.
Protobuf is encoded by hand (no python-protobuf needed); field numbers follow proto/agent.proto.
Run from anywhere: python3 tests/fuzz/agent/make_seeds.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "agent_frame_fuzz")


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, payload):  # length-delimited
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vfield(num, value):  # varint
    return varint(num << 3) + varint(value)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


exec_req = field(2, field(1, b"sh") + field(1, b"-c") + field(1, b"echo hi") +
                 field(2, b"A=b") + field(4, b"/tmp") + field(5, b"1000:1000") +
                 vfield(6, 1) + field(7, vfield(1, 24) + vfield(2, 80)) + vfield(8, 5000) +
                 vfield(9, 1))
seeds = {
    "ping": frame(field(1, b"")),
    "exec_stream": frame(exec_req) + frame(field(1, b"hello\n")) + frame(vfield(2, 1)) +
                   frame(field(3, vfield(1, 50) + vfield(2, 132))) + frame(vfield(4, 15)),
    "write_file": frame(field(3, field(1, b"/tmp/x") + vfield(2, 0o600) + vfield(3, 1) +
                              field(4, b"root"))) +
                  frame(field(1, b"data") + vfield(2, 1)),
    "read_file": frame(field(4, field(1, b"/etc/passwd") + vfield(2, 4096))),
    "stat": frame(field(5, field(1, b"/etc"))),
    "connect": frame(field(6, vfield(1, 8080) + field(2, b"::1"))) + b"raw bytes after",
    "wait_ready_port": frame(field(7, vfield(1, 80) + vfield(4, 1000))),
    "wait_ready_idle": frame(field(7, vfield(3, 200))),
    "wait_ready_exit": frame(field(7, vfield(2, 1))),
    "wait_exit": frame(field(8, b"")),
    "restored": frame(field(9, field(1, bytes(range(32))) + vfield(2, 1700000000000000000) +
                            field(3, b"vm-1") + field(4, b"host") +
                            field(5, b"0123456789abcdef0123456789abcdef") + vfield(6, 3))),
    "shutdown": frame(field(10, b"")),
    "zero_length": struct.pack(">I", 0) + b"x",
    "oversize": struct.pack(">I", (4 << 20) + 1) + b"x" * 16,
    "max_length_header": struct.pack(">I", 0xFFFFFFFF),
    "truncated": struct.pack(">I", 100) + b"abc",
    "garbage_payload": frame(b"\xff\xff\xff\xff"),
    "bad_wire_type": frame(b"\x0f\x00"),
}

os.makedirs(OUT, exist_ok=True)
for name, stream in seeds.items():
    for chunk in (0, 6, 255):  # feed 1, 7 and 256 bytes at a time
        with open(os.path.join(OUT, f"{name}_c{chunk + 1}"), "wb") as f:
            f.write(bytes([chunk]) + stream)
