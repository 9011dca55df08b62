import io
import os
import stat
import tarfile
import tempfile
import unittest

from dmirror_lab import safetar

HAS_FILTER = hasattr(tarfile, "data_filter")


def member(name, kind=tarfile.REGTYPE, data=b"x", mode=0o644, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def extract(members, has_filter, stream=False):
    """Unpacks a tar of members into a new directory; returns the directory
    (the caller removes it) or raises what extract_all raised."""
    d = tempfile.mkdtemp()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(members)), mode="r|" if stream else "r") as tf:
        safetar.extract_all(tf, d, has_filter=has_filter)
    return d


BAD = {
    "absolute name": [member("/etc/escape")],
    "dot-dot": [member("src/../../escape")],
    "symlink to an absolute path": [member("src/l", tarfile.SYMTYPE, link="/etc/passwd")],
    "symlink out of the tree": [member("src/l", tarfile.SYMTYPE, link="../../etc")],
    "hard link out of the tree": [member("src/h", tarfile.LNKTYPE, link="../outside")],
    "character device": [member("src/tty", tarfile.CHRTYPE)],
    "fifo": [member("src/fifo", tarfile.FIFOTYPE)],
    "file through a symlink out": [member("src/l", tarfile.SYMTYPE, link=".."),
                                   member("src/l/../escape")],
}


class Fallback(unittest.TestCase):
    """The checks for a Python without tarfile.data_filter (Debian 12's 3.11.2)."""

    def test_refuses_what_the_data_filter_refuses(self):
        for why, members in BAD.items():
            for stream in (False, True):
                with self.subTest(why=why, stream=stream), self.assertRaises(safetar.LabError) as e:
                    extract(members, has_filter=False, stream=stream)
                self.assertIn("refusing to unpack tar member", str(e.exception))
                self.assertEqual(str(e.exception).count("\n"), 0)

    def test_a_source_tree_unpacks_with_set_id_bits_and_foreign_write_cleared(self):
        members = [
            member("linux/", tarfile.DIRTYPE, mode=0o777),
            member("linux/Makefile", data=b"all:\n", mode=0o4777),
            member("linux/scripts/config", data=b"#!/bin/sh\n", mode=0o755),
            member("linux/ro", data=b"r", mode=0o400),
            member("linux/link", tarfile.SYMTYPE, link="Makefile"),
            member("linux/hard", tarfile.LNKTYPE, link="linux/Makefile", mode=0o4777),
        ]
        for stream in (False, True):
            with self.subTest(stream=stream):
                d = extract(members, has_filter=False, stream=stream)
                try:
                    mk = os.stat(os.path.join(d, "linux", "Makefile")).st_mode
                    self.assertEqual(stat.S_IMODE(mk), 0o755)       # no set-uid, no group/other write
                    self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, "linux", "ro")).st_mode), 0o600)
                    self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, "linux")).st_mode), 0o755)
                    self.assertEqual(os.readlink(os.path.join(d, "linux", "link")), "Makefile")
                    with open(os.path.join(d, "linux", "hard")) as f:
                        self.assertEqual(f.read(), "all:\n")
                    self.assertEqual(os.stat(os.path.join(d, "linux", "Makefile")).st_uid, os.getuid())
                finally:
                    _rmtree(d)


@unittest.skipUnless(HAS_FILTER, "this Python has no tarfile.data_filter")
class WithTheFilter(unittest.TestCase):
    def test_the_filter_refuses_the_same_members(self):
        for why, members in BAD.items():
            if why == "absolute name":      # the filter strips the slash and stays inside
                continue
            with self.subTest(why=why), self.assertRaises(safetar.LabError):
                extract(members, has_filter=True)

    def test_the_same_tree_unpacks(self):
        d = extract([member("linux/Makefile", data=b"all:\n", mode=0o4777)], has_filter=True)
        try:
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, "linux", "Makefile")).st_mode), 0o755)
        finally:
            _rmtree(d)


def _rmtree(d):
    import shutil

    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
