"""The guest's initramfs: a newc cpio written here (so device nodes need no
root) with busybox, /init, hmm-tests, dmirror, their shared libraries and
test_hmm.ko (unless it is built in)."""

import os
import re
import shutil
import stat
import subprocess

from .common import GUEST_INIT


class Cpio:
    """A minimal newc cpio writer (no root needed for device nodes)."""

    def __init__(self, f):
        self.f, self.ino, self.seen = f, 1, set()

    def _hdr(self, name, mode, size, rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        fields = [self.ino, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        h = b"070701" + b"".join(b"%08x" % v for v in fields) + name_b
        self.f.write(h + b"\0" * (-len(h) % 4))

    def dir(self, name):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.seen:
                self.seen.add(d)
                self._hdr(d, stat.S_IFDIR | 0o755, 0)

    def file(self, name, src=None, data=None, mode=0o755):
        name = name.strip("/")
        if name in self.seen:
            return
        self.dir(os.path.dirname(name))
        if data is None:
            with open(src, "rb") as f:
                data = f.read()
        self.seen.add(name)
        self._hdr(name, stat.S_IFREG | mode, len(data))
        self.f.write(data + b"\0" * (-len(data) % 4))

    def symlink(self, name, target):
        self.dir(os.path.dirname(name))
        self.seen.add(name)
        t = target.encode()
        self._hdr(name.strip("/"), stat.S_IFLNK | 0o777, len(t))
        self.f.write(t + b"\0" * (-len(t) % 4))

    def chardev(self, name, major, minor, mode=0o600):
        self.dir(os.path.dirname(name))
        self.seen.add(name)
        self._hdr(name.strip("/"), stat.S_IFCHR | mode, 0, (major, minor))

    def close(self):
        self._hdr("TRAILER!!!", 0, 0)
        self.f.write(b"\0" * (-self.f.tell() % 512))


def ldd_paths(text):
    """The library paths (and the loader) in ldd's output."""
    libs = []
    for line in text.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def shared_libs(binary):
    """Shared libraries (and the loader) a binary needs, from ldd."""
    r = subprocess.run(["ldd", binary], check=False, capture_output=True, text=True)
    return ldd_paths(r.stdout)


def make_initramfs(path, info, dmirror, config, extra=()):
    """extra: (name under /lab, host path) pairs: the extras' script and binaries."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    with open(path, "wb") as f:
        c = Cpio(f)
        for d in ["bin", "sbin", "proc", "sys", "dev", "tmp", "root", "etc", "lab"]:
            c.dir(d)
        c.chardev("dev/console", 5, 1)
        c.chardev("dev/null", 1, 3, 0o666)
        c.chardev("dev/ttyS0", 4, 64)
        c.file("bin/busybox", busybox)
        c.symlink("bin/sh", "busybox")
        c.file("init", GUEST_INIT)
        c.file("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n", mode=0o644)
        c.file("etc/group", data=b"root:x:0:\n", mode=0o644)
        c.file("lab/config", data=config.encode(), mode=0o644)
        if info.get("test_hmm"):       # absent when test_hmm is built in
            c.file("lab/test_hmm.ko", info["test_hmm"], mode=0o644)
        bins = [("lab/hmm-tests", info["hmm_tests"])]
        if dmirror:
            bins.append(("lab/dmirror", dmirror))
        for name, src in extra:
            if name.startswith("/") or "/" in name:   # /boot/config-R, scenarios/NAME.scn
                path = name if name.startswith("/") else "lab/" + name
                parts = path.strip("/").split("/")
                for i in range(1, len(parts)):
                    c.dir("/".join(parts[:i]))
                c.file(path, src, mode=0o644)
            else:
                bins.append(("lab/" + name, src))
        for name, src in bins:
            c.file(name, src)
            for lib in shared_libs(src):
                c.file(lib, os.path.realpath(lib))
        c.close()
