#!/usr/bin/env python3
# File: tests/fuzz/worker/make_vsock_seeds.py
# Writes the seed scripts for vsock_fuzz (corpus/worker_vsock_fuzz/). Each seed is a list of
# steps; the step bytes and operands follow tests/fuzz/worker/vsock_fuzz.cc (kTx=0, kRawTx=1,
# kRx=2, kHostConnect=3, kPeer=4, kHostEvents=5, kEventReset=6).
# Run from anywhere: python3 tests/fuzz/worker/make_vsock_seeds.py
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "worker_vsock_fuzz")

TX, RAW_TX, RX, HOST_CONNECT, PEER, HOST_EVENTS, EVENT_RESET = range(7)
REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
# kTx fix-up bits.
FIX_CIDS, FIX_TYPE, FIX_REPLY, FIX_PORT, FIX_OP, FIX_LEN, FIX_SPLIT, FIX_WRITABLE = (
    1, 2, 4, 8, 16, 32, 64, 128)


def header(op, src_port=5000, dst_port=1024, length=0, src_cid=3, dst_cid=2, type_=1,
           flags=0, buf_alloc=262144, fwd_cnt=0):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, src_port, dst_port, length, type_, op,
                       flags, buf_alloc, fwd_cnt)


def tx(hdr, fix=0, payload=b"", desc_len=None, cut=None):
    if desc_len is None:
        desc_len = len(payload)
    out = bytes([TX]) + hdr + bytes([fix]) + struct.pack("<H", desc_len) + payload
    if fix & FIX_SPLIT:
        out += bytes([cut or 0])
    return out


def rx(n, layout=0, payload_units=64):
    return bytes([RX, n - 1]) + bytes([layout, payload_units]) * n


def host_connect(port):
    return bytes([HOST_CONNECT, 0]) + struct.pack("<H", port)


def host_connect_raw(line):
    return bytes([HOST_CONNECT, (len(line) << 1) | 1]) + line


def peer_write(which, data):
    assert len(data) % 16 == 0 and len(data) // 16 % 4 == 0
    return bytes([PEER, which, len(data) // 16]) + data


def peer(which, action):  # 1 read, 2 half-close, 3 close
    return bytes([PEER, which, action])


seeds = {
    # Guest connects to a listening host port, sends data, the host answers, both close.
    "guest_connect_rw": rx(4) +
    tx(header(REQUEST), FIX_CIDS | FIX_TYPE | FIX_LEN) +
    tx(header(RW), FIX_CIDS | FIX_TYPE | FIX_LEN, b"hello from the guest") +
    peer(0, 1) + peer_write(0, b"x" * 64) + bytes([HOST_EVENTS]) +
    tx(header(CREDIT_UPDATE, fwd_cnt=64), FIX_LEN) +
    tx(header(SHUTDOWN, flags=3), FIX_LEN) + peer(0, 3) + bytes([HOST_EVENTS]) +
    tx(header(RST), FIX_LEN),
    # Host client connects through the socket; the guest accepts, data both ways, host closes.
    "host_connect_rw": rx(6) + host_connect(52) +
    tx(header(RESPONSE), FIX_CIDS | FIX_TYPE | FIX_REPLY | FIX_LEN) +
    tx(header(RW), FIX_CIDS | FIX_TYPE | FIX_REPLY | FIX_LEN, b"guest data") +
    peer(0, 1) + peer_write(0, b"h" * 128) + bytes([HOST_EVENTS]) + rx(2) +
    peer(0, 2) + bytes([HOST_EVENTS]) +
    tx(header(SHUTDOWN, flags=3), FIX_REPLY | FIX_LEN),
    # Host-initiated, refused by the guest.
    "host_connect_refused": rx(2) + host_connect(99) + tx(header(RST), FIX_REPLY | FIX_LEN),
    # Guest connects to a port nobody listens on; and to the wrong CID / type.
    "unknown_port": rx(2) + tx(header(REQUEST, dst_port=7777), FIX_LEN) +
    tx(header(REQUEST, dst_cid=9), FIX_LEN) + tx(header(REQUEST, type_=2), FIX_LEN) +
    tx(header(REQUEST, src_cid=4), FIX_LEN),
    # Lengths that disagree with the buffers, beyond kMaxPayload, a split header.
    "bad_lengths": rx(2) + tx(header(REQUEST), FIX_LEN) +
    tx(header(RW, length=100), 0, b"short") +
    tx(header(RW, length=0x10001), 0, b"") +
    tx(header(RW, length=0xffffffff), 0, b"x" * 16) +
    tx(header(RW), FIX_LEN | FIX_SPLIT, b"split header", cut=20) +
    tx(header(RW), FIX_LEN | FIX_WRITABLE, b"writable payload"),
    # Unknown op, op 0, credit values at the limits on a live connection.
    "bad_ops_credit": rx(4) + tx(header(REQUEST, buf_alloc=0), FIX_LEN) +
    tx(header(99), FIX_LEN) + tx(header(0), FIX_LEN) +
    tx(header(CREDIT_UPDATE, buf_alloc=0xffffffff, fwd_cnt=0xffffffff), FIX_LEN) +
    tx(header(CREDIT_REQUEST), FIX_LEN) + peer_write(0, b"y" * 256) + bytes([HOST_EVENTS]) +
    tx(header(RW, buf_alloc=1, fwd_cnt=0x80000000), FIX_LEN, b"z" * 64) +
    tx(header(REQUEST), FIX_LEN) + tx(header(RESPONSE), FIX_LEN) +
    tx(header(SHUTDOWN, flags=0xffffffff), FIX_LEN) + tx(header(SHUTDOWN, flags=1), FIX_LEN),
    # A flood of packets for unknown connections with no rx buffers (RST backlog), then rx.
    "rst_flood": b"".join(tx(header(RW, src_port=p, dst_port=4242), FIX_LEN)
                          for p in range(300)) + rx(8) + rx(8),
    # Descriptors pointing outside guest memory, huge lengths, write-only tx buffers.
    "raw_tx": bytes([RAW_TX, 1, 1]) + struct.pack("<HH", 0, 44) + struct.pack("<II", 0xffff, 0xfffff000) +
    bytes([2]) + struct.pack("<HH", 0x100, 0) + struct.pack("<I", 0xffffffff) +
    bytes([RAW_TX, 0, 4]) + struct.pack("<HH", 0, 10),
    # Unusable rx buffers (too small, read-only, split header) while data is waiting.
    "rx_layouts": tx(header(REQUEST), FIX_LEN) + peer_write(0, b"q" * 64) +
    rx(2, layout=3 | (10 << 2)) + rx(2, layout=2 | (17 << 2), payload_units=1) +
    rx(2, layout=1, payload_units=0) + rx(2, layout=0, payload_units=0) + bytes([HOST_EVENTS]),
    # Transport reset with live connections; then traffic on the dropped ones.
    "transport_reset": rx(4) + tx(header(REQUEST), FIX_LEN) + host_connect(80) +
    bytes([EVENT_RESET]) + tx(header(RW), FIX_LEN, b"after reset") + peer_write(0, b"r" * 64) +
    bytes([HOST_EVENTS]),
    # Garbage and over-long CONNECT lines, a client that closes at once.
    "bad_connect_lines": host_connect_raw(b"CONNECT x\n") + host_connect_raw(b"HELLO\n") +
    host_connect_raw(b"CONNECT 99999999999\n") + host_connect_raw(b"CONNECT " + b"1" * 40) +
    host_connect_raw(b"CONNECT 5") + peer(4, 3) + bytes([HOST_EVENTS]),
}

os.makedirs(HERE, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
