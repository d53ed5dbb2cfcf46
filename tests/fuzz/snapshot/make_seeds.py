#!/usr/bin/env python3
# File: tests/fuzz/snapshot/make_seeds.py
# Writes the seed corpus of snapshot_state_fuzz (corpus/snapshot_state_fuzz/). Byte 0 is the
# mode (bit 0: wrap the rest in a valid header; bit 1: minor format 1), then the file or the
# payload. Protobuf is encoded by hand (no python-protobuf needed); field numbers follow
# proto/snapshot.proto. Run from anywhere: python3 tests/fuzz/snapshot/make_seeds.py
import hashlib
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "snapshot_state_fuzz")


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


def ld(num, payload):  # length-delimited field
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vi(num, value):  # varint field
    return varint(num << 3) + varint(value)


def region(base, size, off):
    return vi(1, base) + vi(2, size) + vi(3, off)


def queue(max_size=256, size=256, ready=1, desc=0x1000, avail=0x2000, used=0x3000):
    return (vi(1, max_size) + vi(2, size) + vi(3, ready) + vi(4, desc) + vi(5, avail) +
            vi(6, used) + vi(7, 5) + vi(8, 5))


def transport(dtype, queues, acked=1 << 32, offered=(1 << 32) | 0xffff):
    return (vi(1, dtype) + vi(2, 15) + vi(5, offered) + vi(6, acked) + vi(8, 1) +
            b"".join(ld(10, q) for q in queues))


CPU = ld(1, b"GenuineIntel") + vi(2, 6) + vi(3, 85) + ld(5, vi(1, 1) + vi(3, 2) + vi(4, 0x1234))
VCPU = (vi(1, 0) + ld(2, vi(1, 0) + vi(4, 0xd)) + ld(2, vi(1, 1) + vi(6, 0x1234)) +
        ld(4, b"\0" * 144) + ld(5, b"\0" * 312) + ld(10, vi(1, 0x10) + vi(2, 12345)) + vi(12, 2000000))


def state(vcpus=1, regions=(region(0, 0x10000, 0),), devices=(), file_name=b"mem",
          file_size=0x10000, serial=vi(3, 1) + ld(10, b"abc"), vcpu_states=None):
    if vcpu_states is None:
        vcpu_states = [VCPU] * vcpus
    return (vi(1, 1) + vi(2, 1) + ld(3, b"0.1.0") +
            ld(4, ld(1, b"/boot/vmlinux") + ld(2, b"ab" * 32) + ld(3, b"agent-1")) +
            ld(5, CPU) + vi(6, vcpus) +
            ld(7, b"".join(ld(1, r) for r in regions) + ld(2, file_name) + vi(3, file_size)) +
            b"".join(ld(8, v) for v in vcpu_states) + ld(9, ld(1, b"\0" * 112)) +
            b"".join(ld(10, d) for d in devices) + ld(11, serial) + vi(13, 64))


def device(dtype, queues, kind_field, kind_payload=b""):
    return (ld(1, b"virtio-mmio@0xd0000000") + vi(2, 0xd0000000) + vi(3, 5) +
            ld(4, transport(dtype, queues)) + ld(kind_field, kind_payload))


def file_of(payload, minor=1, magic=b"SMSNAPST", major=1, length=None, digest=None):
    length = len(payload) if length is None else length
    digest = hashlib.sha256(payload).digest() if digest is None else digest
    return magic + struct.pack("<HHIQ", major, minor, 0, length) + digest + payload


GOOD = state(devices=[device(2, [queue()], 10, ld(1, b"/disk.img") + vi(4, 2048)),
                      device(4, [queue(size=64)], 11),
                      device(19, [queue(), queue(), queue(size=16)], 12, vi(1, 3)),
                      device(1, [queue(), queue()], 13, ld(1, b"deny_private"))])

seeds = {
    # Raw mode: whole files.
    "raw_good": b"\0" + file_of(GOOD),
    "raw_truncated_header": b"\0" + file_of(GOOD)[:30],
    "raw_truncated_payload": b"\0" + file_of(GOOD)[:-10],
    "raw_trailing_bytes": b"\0" + file_of(GOOD) + b"xx",
    "raw_bad_magic": b"\0" + file_of(GOOD, magic=b"SMSNAPSX"),
    "raw_newer_minor": b"\0" + file_of(GOOD, minor=9),
    "raw_other_major": b"\0" + file_of(GOOD, major=2),
    "raw_bad_checksum": b"\0" + file_of(GOOD, digest=b"\1" * 32),
    "raw_huge_length": b"\0" + file_of(b"", length=1 << 40),
    # Wrapped mode: payloads.
    "wrapped_good": b"\3" + GOOD,
    "wrapped_minor0": b"\1" + GOOD,
    "wrapped_not_proto": b"\1" + b"\xff\xff\xff\xff",
    "wrapped_vcpu_mismatch": b"\3" + state(vcpus=3, vcpu_states=[VCPU]),
    "wrapped_no_regions": b"\3" + state(regions=()),
    "wrapped_regions_overlap": b"\3" + state(regions=(region(0, 0x8000, 0),
                                                      region(0x4000, 0x4000, 0x8000))),
    "wrapped_regions_unaligned": b"\3" + state(regions=(region(0x123, 0x1000, 0),)),
    "wrapped_regions_wrap": b"\3" + state(regions=(region(0xfffffffffffff000, 0x2000, 0),)),
    "wrapped_regions_past_file": b"\3" + state(regions=(region(0, 0x100000, 0),)),
    "wrapped_file_name_path": b"\3" + state(file_name=b"../../etc/passwd"),
    "wrapped_bad_queues": b"\3" + state(devices=[
        device(2, [queue(size=300)], 10), device(4, [queue(size=3)], 11),
        device(19, [queue()], 12), device(7, [queue()], 11),
        ld(4, transport(4, [queue()], acked=1 << 40, offered=1 << 32))]),
    "wrapped_many_cpuid": b"\3" + state(vcpu_states=[
        vi(1, 0) + b"".join(ld(2, vi(1, i)) for i in range(300))]),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
