import os
import tempfile
import unittest

from dmirror_lab import guest
from tests.support import fixture, read

RES = fixture("boots", "madvise", "boot-1", "results")


class Config(unittest.TestCase):
    def test_run_and_shell(self):
        self.assertEqual(
            guest.config_text("run", 0x120000000, 0x130000000, "m", 300, True, "madvise"),
            "LAB_MODE=run\nLAB_SPM0=0x120000000\nLAB_SPM1=0x130000000\nLAB_TEST_HMM=m\n"
            "LAB_TEST_TIMEOUT=300\nLAB_TRACE=1\nLAB_THP=madvise\nLAB_C_WHOLE=0\n",
        )
        self.assertIn("LAB_C_WHOLE=1\n", guest.config_text("run", 1, 2, "m", 5, True, "madvise", True))
        self.assertIn("LAB_TRACE=0\n", guest.config_text("run", 1, 2, "y", 5, False, "always"))
        self.assertIn("LAB_TEST_HMM=y\n", guest.config_text("run", 1, 2, "y", 5, False, "always"))
        shell = guest.config_text("shell", 1, 2, "m", 5, False, "never")
        self.assertTrue(shell.startswith("LAB_MODE=shell\n"))

    def test_the_share_of_one_boot(self):
        with tempfile.TemporaryDirectory() as d:
            guest.prepare_share(d, {"kselftest": ["a.b.c", "a.b.d"], "dmirror": []})
            self.assertEqual(read(d, "todo", "kselftest"), "a.b.c\na.b.d\n")
            self.assertEqual(read(d, "todo", "dmirror"), "")
            self.assertTrue(os.path.isdir(os.path.join(d, "results")))


class Listing(unittest.TestCase):
    def test_the_c_suite_s_cases_from_hmm_tests_l(self):
        # `hmm-tests -l` of linux-source-7.3's hmm-tests (its stderr)
        names = guest.kselftest_names(read("listing-7.3.txt"))
        self.assertEqual(len(names), 78)
        self.assertEqual(names[:2], ["hmm.hmm_device_private.open_close", "hmm.hmm_device_private.anon_read"])
        self.assertEqual(names[36], "hmm.hmm_device_coherent.open_close")
        self.assertEqual(names[-1], "hmm2.hmm2_device_coherent.double_map")
        self.assertIn("hmm.hmm_device_private.benchmark_thp_migration", names)
        self.assertFalse(any(n.startswith("global") for n in names))

    def test_from_the_source_for_a_harness_without_l(self):
        # the declaration lines of linux-source-6.1's selftests/vm/hmm-tests.c, in file order
        names = guest.kselftest_names_from_source(read("hmm-tests-6.1-declarations.c"))
        self.assertEqual(len(names), 58)
        self.assertEqual(names[:2], ["hmm.hmm_device_private.open_close", "hmm.hmm_device_private.anon_read"])
        # hmm2's tests are declared among hmm's, but run after all of hmm's
        self.assertEqual(names[-6:], [f"hmm2.hmm2_device_{v}.{t}" for v in ("private", "coherent")
                                      for t in ("migrate_mixed", "snapshot", "double_map")])
        # on 7.3 it gives what `hmm-tests -l` prints
        seven = "\n".join(f"TEST_F(hmm, {n.split('.')[-1]})" for n in guest.kselftest_names(
            read("listing-7.3.txt"))[:36])
        got = guest.kselftest_names_from_source("FIXTURE(hmm)\nFIXTURE_VARIANT_ADD(hmm, a)\n" + seven)
        self.assertEqual([n.split(".")[-1] for n in got],
                         [n.split(".")[-1] for n in guest.kselftest_names(read("listing-7.3.txt"))[:36]])

    def test_a_fixture_without_variants(self):
        listing = ("# FIXTURE            VARIANT                   TEST\n"
                   "plain                                          one\n"
                   "                                               two\n"
                   "--------------------------------------------------------------------------------\n")
        self.assertEqual(guest.kselftest_names(listing), ["plain.one", "plain.two"])


class OneBoot(unittest.TestCase):
    def test_the_c_cases_of_a_recorded_boot(self):
        res = guest.kselftest_results(RES)
        self.assertEqual(len(res), 5)
        self.assertEqual(res["hmm.hmm_device_private.open_close"],
                         {"verdict": "pass", "detail": "", "secs": 0.18, "rc": "0"})
        self.assertEqual(res["hmm.hmm_device_coherent.migrate_anon_huge_err"]["verdict"], "fail")

    def test_dmirror_s_json_lines_of_a_recorded_boot(self):
        backend, cases, run = guest.dmirror_results(RES)
        self.assertEqual(backend, {"name": "kernel", "detail": "Linux 7.3.4, ABI 7.3, /dev/hmm_dmirror0",
                                   "abi": "7.3"})
        self.assertEqual(run, ("1", 78.71, 123.87))
        err = cases["hmm.hmm_device_coherent.migrate_anon_huge_err"]
        self.assertEqual(err["verdict"], "fail")
        self.assertEqual(err["detail"], "Test terminated by assertion: "
                                        "HugeTests.swift:311:migrate_anon_huge_err:Expected ret (-12) == 0")
        self.assertTrue(err["note"].startswith("Linux 7.3 fails this case too"))
        self.assertEqual(cases["hmm.hmm_device_private.open_close"],
                         {"verdict": "pass", "detail": "", "secs": 0.082, "note": None, "output": ""})

    def test_a_stream_cut_by_a_crash(self):
        text = read("boots", "madvise", "boot-1", "results", "dmirror.jsonl")
        cut = text[: text.index('"name": "hmm.hmm_device_coherent.anon_write_child"') + 20]
        backend, plan, cases, totals = guest.parse_jsonl(cut + "\nnot json\n[1]\n")
        self.assertEqual(len(plan), 5)
        self.assertEqual(list(cases),
                         ["hmm.hmm_device_private.open_close", "hmm.hmm_device_private.migrate_fault"])
        self.assertIsNone(totals)
        self.assertEqual(guest.parse_jsonl(""), (None, [], {}, None))

    def test_tap_lines_carry_the_kernel_finding_note_before_not_ok(self):
        _, cases, _ = guest.dmirror_results(RES)
        name = "hmm.hmm_device_coherent.migrate_anon_huge_err"
        lines = guest.dmirror_case_lines(name, cases[name], 4)
        self.assertEqual(lines[0], f"#  RUN           {name} ...")
        self.assertEqual(lines[-3:], [
            f"# {name}: Linux 7.3 fails this case too (Expected ret (-12) == 0): a kernel finding, "
            "see README.md, The lab",
            f"#          FAIL  {name}",
            f"not ok 4 {name}"])
        self.assertIn("# HugeTests.swift:311:migrate_anon_huge_err:Expected ret (-12) == 0", lines)
        skip = guest.dmirror_case_lines("x.y.z", {"verdict": "skip", "detail": "no gup_test"}, 2)
        self.assertEqual(skip[-2:], ["#            OK  x.y.z", "ok 2 x.y.z # SKIP no gup_test"])

    def test_release_and_thp(self):
        self.assertEqual(guest.kernel_release(RES), "7.3.4")
        self.assertEqual(guest.guest_thp(RES), "madvise")
        self.assertIsNone(guest.kernel_release(fixture("no-such-results")))
        self.assertIsNone(guest.guest_thp(fixture("no-such-results")))


if __name__ == "__main__":
    unittest.main()
