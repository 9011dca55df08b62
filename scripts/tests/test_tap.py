import unittest

from dmirror_lab import tap
from tests.support import read


class ParseCaseOutput(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(
            tap.parse_case_output(read("tap", "kselftest-pass.out"), "hmm.hmm_device_private.migrate"),
            ("pass", ""),
        )

    def test_not_ok(self):
        name = "hmm.hmm_device_coherent.migrate_anon_huge_err"
        self.assertEqual(tap.parse_case_output(read("tap", "kselftest-fail.out"), name), ("fail", ""))

    def test_skip_keeps_the_reason(self):
        name = "hmm.hmm_device_coherent.open_close"
        self.assertEqual(
            tap.parse_case_output(read("tap", "kselftest-skip.out"), name),
            ("skip", "DEVICE_COHERENT not available"),
        )

    def test_missing_result_line(self):
        # what a case killed by the lab's timeout leaves: the RUN line and nothing after it
        self.assertEqual(
            tap.parse_case_output(read("tap", "kselftest-killed.out"), "hmm.hmm_device_private.migrate"),
            ("error", "no TAP result line"),
        )

    def test_another_case_s_line_does_not_count(self):
        self.assertEqual(
            tap.parse_case_output("ok 1 hmm.other\n", "hmm.hmm_device_private.migrate"),
            ("error", "no TAP result line"),
        )

    def test_not_ok_with_a_reason_and_xfail(self):
        self.assertEqual(tap.parse_case_output("not ok 3 a.b.c # timeout\n", "a.b.c"), ("fail", "timeout"))
        self.assertEqual(
            tap.parse_case_output("ok 3 a.b.c # XFAIL known\n", "a.b.c"), ("xfail", " # XFAIL known")
        )


class TestLine(unittest.TestCase):
    def test_lines(self):
        self.assertEqual(tap.test_line(1, "a.b", "pass"), "ok 1 a.b")
        self.assertEqual(tap.test_line(2, "a.b", "fail", "why"), "not ok 2 a.b")
        self.assertEqual(tap.test_line(3, "a.b", "skip", "no THP"), "ok 3 a.b # SKIP no THP")
        self.assertEqual(tap.test_line(3, "a.b", "skip", ""), "ok 3 a.b # SKIP unknown")


class Reassemble(unittest.TestCase):
    def test_renumbered_framing_dropped_diagnostics_kept(self):
        bodies = {
            "hmm.hmm_device_private.migrate": read("tap", "kselftest-pass.out").splitlines(),
            "hmm.hmm_device_coherent.open_close": read("tap", "kselftest-skip.out").splitlines(),
            "hmm.hmm_device_coherent.migrate_anon_huge_err": read("tap", "kselftest-fail.out").splitlines(),
            "hmm.hmm_device_private.anon_read": read("tap", "kselftest-killed.out").splitlines(),
        }
        order = [*bodies, "hmm.hmm_device_private.benchmark_thp_migration"]
        results = {
            "hmm.hmm_device_private.migrate": {"verdict": "pass", "detail": ""},
            "hmm.hmm_device_coherent.open_close": {
                "verdict": "skip",
                "detail": "DEVICE_COHERENT not available",
            },
            "hmm.hmm_device_coherent.migrate_anon_huge_err": {"verdict": "fail", "detail": ""},
            "hmm.hmm_device_private.anon_read": {
                "verdict": "error",
                "detail": "killed by the lab's per-case timeout",
            },
            "hmm.hmm_device_private.benchmark_thp_migration": {
                "verdict": "not run",
                "detail": "--bench only",
            },
        }
        lines = tap.reassemble(order, results, bodies.__getitem__).splitlines()
        self.assertEqual(lines[:2], ["TAP version 13", "1..5"])
        self.assertEqual(
            [x for x in lines if x.startswith(("ok ", "not ok "))],
            [
                "ok 1 hmm.hmm_device_private.migrate",
                "ok 2 hmm.hmm_device_coherent.open_close # SKIP DEVICE_COHERENT not available",
                "not ok 3 hmm.hmm_device_coherent.migrate_anon_huge_err",
                "not ok 4 hmm.hmm_device_private.anon_read # killed by the lab's per-case timeout",
                "ok 5 hmm.hmm_device_private.benchmark_thp_migration # SKIP not run (--bench only)",
            ],
        )
        self.assertEqual(lines[-1], "# Totals: error:1 fail:1 not_run:1 pass:1 skip:1")
        # each case's own framing is gone, its diagnostics stay, a bare line becomes a comment
        self.assertEqual(lines.count("TAP version 13"), 1)
        self.assertFalse(any(x.startswith(("# PASSED", "# FAILED", "# Starting", "1..1")) for x in lines))
        self.assertIn("# could not open hmm dmirror driver (/dev/hmm_dmirror2)", lines)
        self.assertIn("# migrate_anon_huge_err: Test terminated by assertion", lines)


if __name__ == "__main__":
    unittest.main()
