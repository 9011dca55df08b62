import os
import shutil
import tempfile
import types
import unittest

from dmirror_lab import cells, report
from tests.support import captured, fixture, read


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


class Crash(unittest.TestCase):
    def test_a_crash_is_a_finding_never_a_disagreement(self):
        cres = {"a": v("crash"), "b": v("pass")}
        dres = {"a": v("pass"), "b": v("crash")}
        _, disagree, findings, c_only = report.verdict_table(list(cres), cres, list(dres), dres, True, {},
                                                             lambda s, n: "-")
        self.assertEqual((disagree, findings, c_only), ([], [], []))

    def test_counts(self):
        res = {"a": v("pass"), "b": v("crash"), "c": v("not run"), "d": v("error")}
        self.assertEqual(report.count_line("dmirror", res),
                         "dmirror: 4 cases: pass 1, fail 0, skip 0, error 1, crash 1, not run 1")


def write(res, name, text):
    with open(os.path.join(res, name), "w") as f:
        f.write(text)


class Unload(unittest.TestCase):
    RES = fixture("boots", "madvise", "boot-1", "results")

    def copy(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        res = os.path.join(tmp, "results")
        shutil.copytree(self.RES, res)
        return res

    def test_recorded_unload(self):
        self.assertEqual(report.unload_status(self.RES, "m", "done"), ("ok", "unload: rmmod test_hmm ok", []))
        self.assertEqual(report.module_problems(self.RES, "m", True), [])

    def test_built_in(self):
        self.assertEqual(report.unload_status("/nonexistent", "y", "done")[:2],
                         ("n/a", "unload: n/a (test_hmm is built in)"))

    def test_failed_and_hung(self):
        res = self.copy()
        write(res, "rmmod.rc", "1\n")
        write(res, "rmmod.tries", "10\n")
        write(res, "rmmod.txt", "try 10: refcnt=2\nrmmod: can't unload module 'test_hmm': "
                                "Resource temporarily unavailable\n")
        word, line, problems = report.unload_status(res, "m", "done")
        self.assertEqual((word, line), ("FAILED", "unload: rmmod test_hmm FAILED (exit 1) after 10 tries"))
        self.assertTrue(problems[0].startswith("rmmod test_hmm failed 10 times (rmmod: can't unload module "))
        self.assertIn("; try 10: refcnt=2)", problems[0])
        write(res, "rmmod.rc", "hung\n")
        write(res, "rmmod.txt", "try 1: refcnt=0\nrmmod still running after 75 s (state D, wchan "
                                "memunmap_pages)\n")
        word, line, problems = report.unload_status(res, "m", "done")
        self.assertEqual(word, "hung")
        self.assertIn("rmmod still running after 75 s (state D, wchan memunmap_pages)", problems[0])

    def test_not_tried(self):
        res = self.copy()
        os.unlink(os.path.join(res, "rmmod.rc"))
        self.assertEqual(report.unload_status(res, "m", "fault")[0::2], ("not tried", []))
        self.assertEqual(len(report.unload_status(res, "m", "early")[2]), 1)

    def test_a_built_in_test_hmm_must_have_taken_the_cmdline_s_addresses(self):
        res = self.copy()
        spm = (0x120000000, 0x130000000)
        write(res, "builtin-spm.txt", "4831838208\n5100273664\n")     # what the 7.3-builtin guest read
        self.assertEqual(report.module_problems(res, "y", True, spm), [])
        write(res, "builtin-spm.txt", "0\n0\n")
        self.assertEqual(report.module_problems(res, "y", True, spm),
                         ["the built-in test_hmm has spm_addr_dev0/1 0 0, not 0x120000000 0x130000000 from "
                          "the command line"])

    def test_spm_and_insmod(self):
        res = self.copy()
        write(res, "spm.ok", "0\n")
        write(res, "insmod.rc", "1\n")
        write(res, "insmod.txt", "insmod: can't insert 'test_hmm.ko': Device or resource busy\n")
        problems = report.module_problems(res, "m", True)
        self.assertIn("not reserved RAM", problems[0])
        self.assertEqual(problems[1], "insmod test_hmm failed: insmod: can't insert 'test_hmm.ko': "
                                      "Device or resource busy")


class Findings(unittest.TestCase):
    def test_repro_commands(self):
        flags = ["--cell", "7.3-always", "--out", "/tmp/lab-repro"]
        self.assertEqual(report.repro_command(flags, "hmm.hmm_device_coherent.migrate_anon_huge_err"),
                         "scripts/lab run --cell 7.3-always --out /tmp/lab-repro "
                         "--only '^hmm\\.hmm_device_coherent\\.migrate_anon_huge_err$'")
        self.assertEqual(report.prefix_command(flags, "hmm.hmm_device_coherent.migrate_anon_huge_err"),
                         "scripts/lab run --cell 7.3-always --out /tmp/lab-repro "
                         "--only '^hmm\\.hmm_device_coherent\\.' "
                         "--upto hmm.hmm_device_coherent.migrate_anon_huge_err")


class FromRecordedBoots(unittest.TestCase):
    """The whole report of the three recorded boots of a 7.3-always run."""

    def test_report(self):
        from tests.test_boots import recorded_boots

        bs, saved = recorded_boots()
        with tempfile.TemporaryDirectory() as out:
            ctx = types.SimpleNamespace(
                out=out, cell=cells.cell("7.3-always"), label="7.3-always", info={"release": "7.3.4"},
                boots=bs, notrun=saved["notrun"], names=saved["names"], dmirror_status="dmirror: using /d",
                dmirror_ok=True, trace_status="traces: not compared", trace=True,
                run_flags=["--cell", "7.3-always", "--out", "/tmp/lab-repro"])
            with captured() as lines:
                status, summary = report.report(ctx)
            findings = read(out, "findings.txt")
            tap = read(out, "dmirror.tap").splitlines()
        self.assertEqual(status, 1)
        # dmirror's JSON lines are whole; the fixture keeps five of the C cases' outputs
        self.assertEqual(summary["dmirror"], {"pass": 70, "fail": 5, "skip": 0, "error": 0, "crash": 1,
                                              "not run": 2})
        self.assertEqual(summary["kselftest"]["crash"], 1)
        self.assertEqual(summary["boots"], 3)
        self.assertEqual(summary["boot_ends"], ["fault", "fault", "done"])
        self.assertEqual(summary["splats"]["new"], 2)     # the Oops, once in each suite
        self.assertEqual(summary["splats"]["after_fault"], 1)
        self.assertEqual(summary["unload"], "ok")
        # (only five C outputs are kept: those five agree with dmirror)
        kept = {f[:-4] for b in ("boot-1", "boot-2")
                for f in os.listdir(fixture("boots", "always", b, "results", "kselftest"))}
        self.assertEqual([n for n in summary["disagree"] if n in kept], [])
        self.assertIn("lab: FAIL: 2 kernel splat(s) not on scripts/known-splats.tsv (see splats.txt)", lines)
        # each finding: the case, the splat's first lines, the command that runs it alone
        self.assertIn("### hmm.hmm_device_coherent.migrate_anon_huge_err\n", findings)
        self.assertIn("- kselftest: kernel fault (boot 1): BUG: kernel NULL pointer dereference", findings)
        self.assertIn("    BUG: kernel NULL pointer dereference, address: 0000000000000008\n", findings)
        self.assertIn("--only '^hmm\\.hmm_device_coherent\\.migrate_anon_huge_err$'", findings)
        self.assertEqual(tap[:3], ["TAP version 13", "# dmirror: backend kernel (Linux 7.3.4, ABI 7.3, "
                                   "/dev/hmm_dmirror0)", "1..78"])
        self.assertIn("not ok 69 hmm.hmm_device_coherent.migrate_anon_huge_err # kernel fault (boot 2): "
                      "BUG: kernel NULL pointer dereference, address: 0000000000000008", tap)


if __name__ == "__main__":
    unittest.main()
