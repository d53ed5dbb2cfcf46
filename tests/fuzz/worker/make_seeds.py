#!/usr/bin/env python3
# File: tests/fuzz/worker/make_seeds.py
# Writes the seed inputs for virtio_queue_fuzz: byte 0 = log2(queue size), byte 1 = device
# (bit0: 1 = rng, bit1: read-only disk), then guest memory from address 0.
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "worker_virtio_queue_fuzz")


def mem():
    return bytearray(0x5000)


def desc(m, i, addr, length, flags, nxt):
    struct.pack_into("<QIHH", m, 0x1000 + 16 * i, addr, length, flags, nxt)


def publish(m, heads):
    for k, h in enumerate(heads):
        struct.pack_into("<H", m, 0x2004 + 2 * k, h)
    struct.pack_into("<H", m, 0x2002, len(heads))


def write(name, qlog, dev, m):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([qlog, dev]) + bytes(m))


m = mem()  # Valid blk read: header, 512-byte data, status.
struct.pack_into("<IIQ", m, 0x4000, 0, 0, 1)
desc(m, 0, 0x4000, 16, 1, 1)
desc(m, 1, 0x4100, 512, 3, 2)
desc(m, 2, 0x4400, 1, 2, 0)
publish(m, [0])
write("blk_read", 4, 0, m)

m = mem()  # Valid blk write.
struct.pack_into("<IIQ", m, 0x4000, 1, 0, 2)
desc(m, 0, 0x4000, 16, 1, 1)
desc(m, 1, 0x4100, 512, 1, 2)
desc(m, 2, 0x4400, 1, 2, 0)
publish(m, [0])
write("blk_write", 4, 0, m)

m = mem()  # Loop.
desc(m, 0, 0x4000, 16, 1, 1)
desc(m, 1, 0x4000, 16, 1, 0)
publish(m, [0])
write("blk_loop", 4, 0, m)

m = mem()  # Buffer far outside memory and a huge length.
desc(m, 0, 0x4000, 16, 1, 1)
desc(m, 1, 0xfffffffffffff000, 0xffffffff, 3, 2)
desc(m, 2, 0x4400, 1, 2, 0)
publish(m, [0])
write("blk_out_of_range", 4, 0, m)

m = mem()  # GET_ID, then flush, then an unknown type.
for k, t in enumerate((8, 4, 77)):
    struct.pack_into("<IIQ", m, 0x4000 + 32 * k, t, 0, 0)
    desc(m, 3 * k, 0x4000 + 32 * k, 16, 1, 3 * k + 1)
    desc(m, 3 * k + 1, 0x4800 + 32 * k, 20, 3, 3 * k + 2)
    desc(m, 3 * k + 2, 0x4c00 + k, 1, 2, 0)
publish(m, [0, 3, 6])
write("blk_getid_flush_unknown", 4, 0, m)

m = mem()  # rng with a huge writable buffer.
desc(m, 0, 0x4000, 0xf0000, 2, 0)
publish(m, [0])
write("rng_big", 4, 1, m)

m = mem()  # avail idx far ahead of the queue size.
struct.pack_into("<H", m, 0x2002, 0x8000)
write("avail_jump", 4, 1, m)
