#!/usr/bin/env python3
"""Writes the seed corpus of agent_client_fuzz (tests/fuzz/agent/corpus/agent_client_fuzz/).

Each seed is: one byte choosing the AgentClient operation (order of `Op` in client_fuzz.cc),
then the agent's whole reply stream. Protobuf is encoded by hand; field numbers follow
proto/agent.proto. Run from anywhere: python3 tests/fuzz/agent/make_client_seeds.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "agent_client_fuzz")

(PING, RUN, RUN_STDIN, WRITE_FILE, READ_FILE, STAT, CONNECT, WAIT_READY, WAIT_EXIT, RESTORED,
 SHUTDOWN) = range(11)


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vi(num, value):
    return varint(num << 3) + varint(value)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def error(code, msg):
    return frame(ld(1, vi(1, code) + ld(2, msg)))


EXIT = ld(3, vi(1, 3) + vi(4, 1500) + vi(5, 2048))
seeds = {
    "ping": bytes([PING]) + frame(ld(2, ld(1, b"agent-1.2") +
                                     b"\x11" + struct.pack("<d", 12.5) + vi(3, 4))),
    "ping_nan_uptime": bytes([PING]) + frame(ld(2, b"\x11" + struct.pack("<d", float("nan")))),
    "ping_error": bytes([PING]) + error(5, b"not found"),
    "ping_error_bad_code": bytes([PING]) + error(-7, b"weird") + error(0, b"ok?"),
    "ping_wrong_result": bytes([PING]) + frame(ld(4, vi(1, 1))),
    "run": bytes([RUN]) + frame(ld(3, vi(1, 42))) + frame(ld(1, b"out" * 40)) +
    frame(ld(2, b"err")) + frame(EXIT),
    "run_signaled": bytes([RUN]) + frame(ld(3, vi(1, 42))) +
    frame(ld(3, vi(2, 9) + vi(3, 1) + vi(4, (1 << 64) - 1))),
    "run_no_exit": bytes([RUN]) + frame(ld(3, vi(1, 42))) + frame(ld(1, b"partial")),
    "run_stdin": bytes([RUN_STDIN]) + frame(ld(3, vi(1, 7))) + frame(ld(1, b"echo")) +
    frame(EXIT),
    "write_file": bytes([WRITE_FILE]) + frame(ld(4, vi(1, 9))),
    "write_file_error": bytes([WRITE_FILE]) + error(7, b"permission denied"),
    "read_file": bytes([READ_FILE]) + frame(ld(5, vi(1, 1) + vi(2, 5) + vi(3, 0o100644))) +
    frame(ld(1, b"hello") + vi(2, 1)),
    "read_file_too_much": bytes([READ_FILE | 0x80]) +
    frame(ld(5, vi(1, 1) + vi(2, 5))) + frame(ld(1, b"x" * 64)) + frame(vi(2, 1)),
    "read_file_size_lies": bytes([READ_FILE]) + frame(ld(5, vi(1, 1) + vi(2, 1 << 62))) +
    frame(ld(1, b"abc") + vi(2, 1)),
    "stat": bytes([STAT]) + frame(ld(5, vi(1, 1) + vi(2, 4096) + vi(3, 0o40755) + vi(4, 0) +
                                     vi(5, 0) + vi(6, (1 << 64) - 5))),
    "stat_missing": bytes([STAT]) + frame(ld(5, b"")),
    "connect": bytes([CONNECT]) + frame(ld(6, b"")) + b"raw bytes after the reply",
    "connect_refused": bytes([CONNECT]) + error(14, b"nothing listens on 8080"),
    "wait_ready": bytes([WAIT_READY]) + frame(ld(7, vi(1, 123456))),
    "wait_exit": bytes([WAIT_EXIT]) + frame(ld(8, ld(1, vi(1, 1) + vi(4, 99)) + vi(2, 3))),
    "restored": bytes([RESTORED]) + frame(ld(9, vi(1, 3))),
    "restored_wrong_generation": bytes([RESTORED]) + frame(ld(9, vi(1, 4))),
    "shutdown": bytes([SHUTDOWN]) + frame(ld(10, b"")),
    "bad_frames": bytes([PING]) + struct.pack(">I", 0) + b"",
    "oversize_frame": bytes([RUN]) + struct.pack(">I", 0xffffffff) + b"abc",
    "truncated_frame": bytes([STAT]) + struct.pack(">I", 100) + b"short",
    "garbage_payload": bytes([WAIT_EXIT]) + frame(b"\xff\xff\xff\xff\xff"),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
