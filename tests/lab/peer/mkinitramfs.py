#!/usr/bin/env python3
# File: tests/lab/peer/mkinitramfs.py
# Test tooling: writes a newc cpio initramfs whose /init is a given static binary (for example
# the guest-agent), plus /dev/console and the usual mount points. Needs no root (no mknod).
"""usage: mkinitramfs.py OUT.cpio --init BINARY [--file SRC:DEST]..."""

import argparse
import io
import os
import stat
import sys


class Cpio:
    """newc ("070701") archive writer: the format the kernel unpacks as initramfs."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
        self.ino += 1
        self.buf.write(b"070701" + "".join(f"{v:08x}" for v in fields).encode() + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self.entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self.entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name, major, minor, mode=0o600):
        self.entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self):
        self.entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def build(init_path, extra_files=()):
    """Returns the bytes of an initramfs with `init_path` as /init."""
    cpio = Cpio()
    for d in ("dev", "proc", "sys", "tmp", "run"):
        cpio.dir(d)
    # The kernel opens /dev/console for /init's stdio before anything can mount devtmpfs.
    cpio.chardev("dev/console", 5, 1)
    with open(init_path, "rb") as f:
        cpio.file("init", f.read(), 0o755)
    for src, dest in extra_files:
        with open(src, "rb") as f:
            mode = os.stat(src).st_mode & 0o777
            cpio.file(dest.lstrip("/"), f.read(), mode)
    return cpio.finish()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--init", required=True)
    parser.add_argument("--file", action="append", default=[], help="SRC:DEST")
    args = parser.parse_args()
    extra = [tuple(f.split(":", 1)) for f in args.file]
    data = build(args.init, extra)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
