import io
import os
import shutil
import stat
import tempfile
import unittest

from dmirror_lab import initramfs


def read_newc(data):
    """[(name, mode, rdev major, rdev minor, data)] of a newc cpio, up to its trailer."""
    out, pos = [], 0
    while True:
        assert data[pos : pos + 6] == b"070701", data[pos : pos + 6]
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        _, mode, _, _, _, _, size, _, _, rmaj, rmin, namesize, _ = fields
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        assert data[name_start + namesize - 1] == 0
        pos = name_start + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out, pos
        out.append((name, mode, rmaj, rmin, body))


class CpioWriter(unittest.TestCase):
    def test_written_entries_read_back(self):
        with tempfile.NamedTemporaryFile() as src:
            src.write(b"\x7fELF...")
            src.flush()
            buf = io.BytesIO()
            c = initramfs.Cpio(buf)
            c.dir("bin")
            c.chardev("dev/console", 5, 1)
            c.file("bin/busybox", src.name)
            c.symlink("bin/sh", "busybox")
            c.file("lab/config", data=b"LAB_MODE=run\n", mode=0o644)
            c.file("/lab/config", data=b"second copy is ignored")
            c.file("lib/x86_64-linux-gnu/libc.so.6", data=b"abc")
            c.close()
        data = buf.getvalue()
        entries, end = read_newc(data)
        self.assertEqual(len(data) % 512, 0)
        self.assertEqual(data[end:], b"\0" * (len(data) - end))
        by_name = {e[0]: e for e in entries}
        self.assertEqual(
            [e[0] for e in entries],
            [
                "bin",
                "dev",
                "dev/console",
                "bin/busybox",
                "bin/sh",
                "lab",
                "lab/config",
                "lib",
                "lib/x86_64-linux-gnu",
                "lib/x86_64-linux-gnu/libc.so.6",
            ],
        )
        self.assertEqual(stat.S_IFMT(by_name["bin"][1]), stat.S_IFDIR)
        self.assertEqual(by_name["dev/console"][1:4], (stat.S_IFCHR | 0o600, 5, 1))
        self.assertEqual(by_name["bin/busybox"][1], stat.S_IFREG | 0o755)
        self.assertEqual(by_name["bin/busybox"][4], b"\x7fELF...")
        self.assertEqual(by_name["bin/sh"][1], stat.S_IFLNK | 0o777)
        self.assertEqual(by_name["bin/sh"][4], b"busybox")
        self.assertEqual(by_name["lab/config"][1], stat.S_IFREG | 0o644)
        self.assertEqual(by_name["lab/config"][4], b"LAB_MODE=run\n")

    def test_inode_numbers_are_distinct(self):
        buf = io.BytesIO()
        c = initramfs.Cpio(buf)
        for name in ("a", "b/c", "d"):
            c.file(name, data=b"x")
        c.close()
        data = buf.getvalue()
        inos, pos = [], 0
        while data[pos : pos + 6] == b"070701":
            inos.append(int(data[pos + 6 : pos + 14], 16))
            namesize = int(data[pos + 94 : pos + 102], 16)
            size = int(data[pos + 54 : pos + 62], 16)
            pos += 110 + namesize
            pos += -pos % 4
            pos += size + (-size % 4)
        self.assertEqual(len(set(inos)), len(inos))


class Ldd(unittest.TestCase):
    def test_paths(self):
        text = (
            "\tlinux-vdso.so.1 (0x00007f8a4fab3000)\n"
            "\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f8a4f9c2000)\n"
            "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f8a4e81e000)\n"
            "\t/lib64/ld-linux-x86-64.so.2 (0x00007f8a4fab5000)\n"
        )
        self.assertEqual(
            initramfs.ldd_paths(text),
            [
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ],
        )
        self.assertEqual(initramfs.ldd_paths("\tnot a dynamic executable\n"), [])

    @unittest.skipUnless(shutil.which("busybox") or os.path.exists("/bin/busybox"), "needs busybox")
    def test_image_of_static_binaries(self):
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for name in ("test_hmm.ko", "hmm-tests", "init"):
                paths[name] = os.path.join(tmp, name)
                with open(paths[name], "wb") as f:
                    f.write(name.encode())
            image = os.path.join(tmp, "initramfs.cpio")
            initramfs.make_initramfs(
                image,
                {"test_hmm": paths["test_hmm.ko"], "hmm_tests": paths["hmm-tests"]},
                None,
                "LAB_MODE=run\n",
            )
            with open(image, "rb") as f:
                entries, _ = read_newc(f.read())
        names = [e[0] for e in entries]
        for name in (
            "init",
            "bin/busybox",
            "bin/sh",
            "lab/config",
            "lab/test_hmm.ko",
            "lab/hmm-tests",
        ):
            self.assertIn(name, names)
        self.assertNotIn("lab/dmirror", names)

    @unittest.skipUnless(shutil.which("busybox") or os.path.exists("/bin/busybox"), "needs busybox")
    def test_a_built_in_test_hmm_has_no_module(self):
        with tempfile.TemporaryDirectory() as tmp:
            ht = os.path.join(tmp, "hmm-tests")
            with open(ht, "wb") as f:
                f.write(b"x")
            image = os.path.join(tmp, "initramfs.cpio")
            initramfs.make_initramfs(image, {"test_hmm": None, "hmm_tests": ht}, None, "LAB_TEST_HMM=y\n")
            with open(image, "rb") as f:
                entries, _ = read_newc(f.read())
        names = [e[0] for e in entries]
        self.assertIn("lab/hmm-tests", names)
        self.assertNotIn("lab/test_hmm.ko", names)


if __name__ == "__main__":
    unittest.main()
