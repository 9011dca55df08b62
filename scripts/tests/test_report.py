import os
import shutil
import tempfile
import unittest

from dmirror_lab import guest, report
from tests.support import fixture


def v(verdict, detail=""):
    return {"verdict": verdict, "detail": detail}


class VerdictTable(unittest.TestCase):
    def table(self, cres, dres, dmirror_ran=True, traces=None):
        cells = {("kselftest", "b"): "W [known] x1", ("dmirror", "b"): "W [known] x1"}
        return report.verdict_table(
            list(cres),
            cres,
            list(dres),
            dres,
            dmirror_ran,
            traces or {},
            lambda suite, n: cells.get((suite, n), "-"),
        )

    def test_agree_disagree_finding_and_missing(self):
        cres = {"a": v("pass"), "b": v("fail"), "c": v("pass"), "d": v("fail"), "e": v("not run")}
        dres = {"a": v("pass"), "b": v("fail"), "c": v("fail"), "e": v("not run"), "x": v("pass")}
        rows, disagree, findings, c_only = self.table(cres, dres, traces={"a": "same", "c": "differs"})
        self.assertEqual(
            rows,
            [
                ("a", "pass", "pass", "same", "-", "-"),
                ("b", "fail", "fail", "-", "W [known] x1", "W [known] x1"),
                ("c", "pass", "fail", "differs", "-", "-"),
                ("d", "fail", "-", "-", "-", "-"),
                ("e", "not run", "not run", "-", "-", "-"),
                # dmirror's own case comes after the C suite's, with "-" for C
                ("x", "-", "pass", "-", "-", "-"),
            ],
        )
        self.assertEqual(disagree, ["c"])
        self.assertEqual(findings, ["b"])  # failed in both: a kernel finding, not a disagreement
        self.assertEqual(c_only, ["d"])

    def test_error_counts_as_failed_for_findings_but_differs_from_fail(self):
        _, disagree, findings, _ = self.table(
            {"a": v("error"), "b": v("error")}, {"a": v("error"), "b": v("fail")}
        )
        self.assertEqual(findings, ["a"])
        self.assertEqual(disagree, ["b"])

    def test_dmirror_not_run_shows_dashes(self):
        rows, disagree, findings, c_only = self.table({"a": v("pass"), "b": v("fail")}, {}, dmirror_ran=False)
        self.assertEqual([r[2] for r in rows], ["-", "-"])
        self.assertEqual((disagree, findings, c_only), ([], [], ["b"]))

    def test_tsv_and_console_table(self):
        rows, disagree, _, _ = self.table(
            {"a": v("pass"), "c": v("pass")}, {"a": v("pass"), "c": v("fail")}, traces={"c": "differs"}
        )
        self.assertEqual(
            report.verdicts_tsv(rows).splitlines(),
            [
                "case\tkselftest\tdmirror\ttrace_kernel_vs_sim\tkselftest_splats\tdmirror_splats",
                "a\tpass\tpass\t-\t-\t-",
                "c\tpass\tfail\tdiffers\t-\t-",
            ],
        )
        lines = report.table_lines(rows, disagree)  # names as wide as the longest case name
        self.assertEqual(lines[0], "case  C        dmirror  trace    splats")
        self.assertEqual(lines[2], "c  pass     fail     differs  -  <-- DISAGREE  <-- SIMULATOR DIFFERS")


class FromRecordedResults(unittest.TestCase):
    """The table of the trimmed results of a real run."""

    def test_recorded_run(self):
        res = fixture("results")
        cres, corder = guest.suite_results(res, "kselftest")
        dres, dorder = guest.suite_results(res, "dmirror")
        rows, disagree, findings, c_only = report.verdict_table(
            corder, cres, dorder, dres, True, {}, lambda s, n: "-"
        )
        self.assertEqual(
            [r[:3] for r in rows],
            [
                ("hmm.hmm_device_private.open_close", "pass", "pass"),
                ("hmm.hmm_device_coherent.anon_write_child", "pass", "pass"),
                ("hmm.hmm_device_coherent.migrate_anon_huge_err", "fail", "fail"),
                ("hmm.hmm_device_private.benchmark_thp_migration", "not run", "not run"),
                ("hmm2.hmm2_device_coherent.snapshot", "pass", "pass"),
            ],
        )
        self.assertEqual(
            (disagree, findings, c_only), ([], ["hmm.hmm_device_coherent.migrate_anon_huge_err"], [])
        )
        self.assertEqual(
            report.count_line("kselftest", cres),
            "kselftest: 5 cases: pass 3, fail 1, skip 0, error 0, not run 1",
        )
        self.assertEqual(report.coherent_skipped(corder, cres), [])

    def test_module_checks(self):
        line, problems = report.module_checks(fixture("results"))
        self.assertEqual((line, problems), ("unload: rmmod test_hmm ok", []))
        with tempfile.TemporaryDirectory() as tmp:
            res = os.path.join(tmp, "results")
            shutil.copytree(fixture("results"), res)
            for name, text in (
                ("rmmod.rc", "1\n"),
                ("rmmod.tries", "10\n"),
                ("spm.ok", "0\n"),
                (
                    "rmmod.txt",
                    "try 10: refcnt=2\nrmmod: can't unload module 'test_hmm': "
                    "Resource temporarily unavailable\n",
                ),
            ):
                with open(os.path.join(res, name), "w") as f:
                    f.write(text)
            line, problems = report.module_checks(res)
        self.assertEqual(line, "unload: rmmod test_hmm FAILED (exit 1) after 10 tries")
        self.assertEqual(len(problems), 2)
        self.assertIn("not reserved RAM", problems[0])
        self.assertTrue(problems[1].startswith("rmmod test_hmm failed 10 times (rmmod: can't unload module "))
        self.assertIn("; try 10: refcnt=2)", problems[1])

    def test_coherent_skip_is_found(self):
        cres = {
            "hmm.hmm_device_coherent.open_close": v("skip", "DEVICE_COHERENT not available"),
            "hmm.hmm_device_private.open_close": v("skip", "no THP"),
        }
        self.assertEqual(report.coherent_skipped(list(cres), cres), ["hmm.hmm_device_coherent.open_close"])

    def test_trace_tally(self):
        self.assertEqual(
            report.trace_tally_line({"a": "same", "b": "nondet", "c": "same"}, "/o"),
            "traces (kernel vs simulator, command by command): nondet 1, same 2 (details in /o/traces.txt)",
        )


if __name__ == "__main__":
    unittest.main()
