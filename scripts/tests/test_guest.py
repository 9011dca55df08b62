import base64
import gzip
import io
import os
import shutil
import tarfile
import tempfile
import unittest

from dmirror_lab import guest
from tests.support import fixture, read


def tar_of(members):
    """A gzipped tar of (TarInfo, data or None) pairs, as the guest sends it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(buf.getvalue())


def as_sent(blob):
    """What arrives on ttyS1: the base64 between the markers, wrapped like busybox base64."""
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + 76] for i in range(0, len(text), 76)]
    return "noise\r\n" + guest.RESULTS_BEGIN + "\n" + "\n".join(lines) + "\n" + guest.RESULTS_END + "\n"


class Config(unittest.TestCase):
    def test_run_and_shell(self):
        self.assertEqual(
            guest.config_text("run", False, 0x120000000, 0x130000000, 900, None),
            "LAB_MODE=run\nLAB_BENCH=0\nLAB_SPM0=0x120000000\nLAB_SPM1=0x130000000\n"
            "LAB_TEST_TIMEOUT=900\nLAB_ONLY=''\n",
        )
        self.assertIn("LAB_BENCH=1\n", guest.config_text("run", True, 1, 2, 5, "migrate"))
        self.assertIn("LAB_ONLY='migrate'\n", guest.config_text("run", True, 1, 2, 5, "migrate"))
        self.assertTrue(guest.config_text("shell", False, 1, 2, 5, None).startswith("LAB_MODE=shell\n"))


HAS_FILTER = hasattr(tarfile, "data_filter")


class Transfer(unittest.TestCase):
    @unittest.skipUnless(HAS_FILTER, "this Python has no tarfile.data_filter")
    def test_round_trip(self):
        d = tarfile.TarInfo("results")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        f = tarfile.TarInfo("results/insmod.rc")
        f.mode = 0o644
        blob = guest.results_blob(as_sent(tar_of([(d, None), (f, b"0\n")])))
        with tempfile.TemporaryDirectory() as work:
            res = guest.unpack_results(blob, work)
            self.assertEqual(res, os.path.join(work, "results"))
            with open(os.path.join(res, "insmod.rc")) as fh:
                self.assertEqual(fh.read(), "0\n")

    def test_nothing_sent(self):
        self.assertIsNone(guest.results_blob("[  1.0] Kernel panic - not syncing\n"))
        with tempfile.TemporaryDirectory() as work:
            path = os.path.join(work, "results.b64")
            with open(path, "w") as f:
                f.write("")
            with self.assertRaises(guest.LabError) as e:
                guest.receive_results(path, work, "/o/console.log")
        self.assertIn("the guest sent no results", str(e.exception))

    def test_damaged(self):
        with self.assertRaises(guest.LabError):
            guest.results_blob(guest.RESULTS_BEGIN + "\nbm90IGd6aXA=\n" + guest.RESULTS_END)

    @unittest.skipUnless(HAS_FILTER, "this Python has no tarfile.data_filter")
    def test_the_data_filter_refuses_paths_out_of_the_target(self):
        up = tarfile.TarInfo("../escape")
        with tempfile.TemporaryDirectory() as work, self.assertRaises(tarfile.FilterError):
            guest.unpack_results(guest.results_blob(as_sent(tar_of([(up, b"x")]))), work)
        # an absolute name loses its leading slash and stays inside
        absolute = tarfile.TarInfo("/etc/escape")
        with tempfile.TemporaryDirectory() as work:
            guest.unpack_results(guest.results_blob(as_sent(tar_of([(absolute, b"x")]))), work)
            self.assertTrue(os.path.exists(os.path.join(work, "etc", "escape")))
        link = tarfile.TarInfo("results/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        with tempfile.TemporaryDirectory() as work, self.assertRaises(tarfile.FilterError):
            guest.unpack_results(guest.results_blob(as_sent(tar_of([(link, None)]))), work)

    def test_a_python_without_the_data_filter_is_one_line_error(self):
        saved = tarfile.__dict__.pop("data_filter", None)
        try:
            with self.assertRaises(guest.LabError) as e:
                guest.unpack_results(b"", "/nonexistent")
        finally:
            if saved is not None:
                tarfile.data_filter = saved
        self.assertIn("has no tarfile.data_filter", str(e.exception))


class Results(unittest.TestCase):
    def test_rc_file(self):
        rows, order = guest.read_rc(fixture("results", "kselftest.rc"))
        self.assertEqual(order[0], "hmm.hmm_device_private.open_close")
        self.assertEqual(
            rows["hmm.hmm_device_coherent.migrate_anon_huge_err"], {"rc": "1", "t0": 34.6, "t1": 34.85}
        )
        self.assertEqual(rows["hmm.hmm_device_private.benchmark_thp_migration"]["rc"], "notrun")
        self.assertEqual(guest.read_rc(fixture("results", "no-such.rc")), ({}, []))

    def test_both_suites_of_a_recorded_run(self):
        for suite in guest.SUITES:
            res, order = guest.suite_results(fixture("results"), suite)
            self.assertEqual(len(order), 5)
            self.assertEqual(res["hmm.hmm_device_private.open_close"]["verdict"], "pass")
            self.assertEqual(res["hmm.hmm_device_coherent.migrate_anon_huge_err"]["verdict"], "fail")
            bench = res["hmm.hmm_device_private.benchmark_thp_migration"]
            self.assertEqual(
                bench,
                {"verdict": "not run", "detail": "benchmark_thp_migration runs only with --bench", "secs": 0},
            )
        dres, _ = guest.suite_results(fixture("results"), "dmirror")
        self.assertEqual(
            dres["hmm.hmm_device_coherent.migrate_anon_huge_err"]["detail"],
            "Test terminated by assertion: HugeTests.swift:308:migrate_anon_huge_err:Expected ret (-12) == 0",
        )

    def test_a_killed_case(self):
        with tempfile.TemporaryDirectory() as tmp:
            res = os.path.join(tmp, "results")
            shutil.copytree(fixture("results"), res)
            name = "hmm.hmm_device_private.open_close"
            with open(os.path.join(res, "dmirror.rc"), "a") as f:
                f.write("hmm.hmm_device_private.anon_read 137 40.00 940.00\n")
            with open(os.path.join(res, "kselftest.rc"), "a") as f:
                f.write("hmm.hmm_device_private.anon_read 139 40.00 41.00\n")
            shutil.copy(
                fixture("tap", "kselftest-killed.out"),
                os.path.join(res, "kselftest", "hmm.hmm_device_private.anon_read.out"),
            )
            # a killed dmirror writes no JSON at all
            with open(os.path.join(res, "dmirror", "hmm.hmm_device_private.anon_read.json"), "w"):
                pass
            os.unlink(os.path.join(res, "dmirror", name + ".json"))
            dres, _ = guest.suite_results(res, "dmirror")
            cres, _ = guest.suite_results(res, "kselftest")
        self.assertEqual(dres["hmm.hmm_device_private.anon_read"]["verdict"], "error")
        self.assertEqual(
            dres["hmm.hmm_device_private.anon_read"]["detail"],
            "killed by the lab's per-case timeout (exit 137)",
        )
        self.assertEqual(dres["hmm.hmm_device_private.anon_read"]["secs"], 900.0)
        self.assertEqual(dres[name]["detail"], "no output")
        self.assertEqual(cres["hmm.hmm_device_private.anon_read"]["detail"], "no TAP result line (exit 139)")

    def test_case_bodies(self):
        res = fixture("results")
        name = "hmm.hmm_device_coherent.migrate_anon_huge_err"
        self.assertEqual(
            guest.case_body(res, "kselftest", name), read("results", "kselftest", name + ".out").splitlines()
        )
        self.assertEqual(guest.case_body(res, "dmirror", name)[-1], "not ok 1 " + name)
        self.assertEqual(guest.case_body(res, "dmirror", "no.such.case"), [])

    def test_kernel_release(self):
        self.assertEqual(guest.kernel_release(fixture("results")), "7.3.4")
        self.assertIsNone(guest.kernel_release(fixture("no-such-results")))


if __name__ == "__main__":
    unittest.main()
