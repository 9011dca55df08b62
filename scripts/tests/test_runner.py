import json
import os
import tempfile
import types
import unittest

from dmirror_lab import cells, runner
from tests.support import fixture, read
from tests.test_boots import recorded_boots


def args(**kw):
    base = dict(source=None, kasan=False, mutant=None, dmirror=None, mem=None, cpus=None, append=None,
                panic_on_oops=False, kvm=False, cpu=None)
    return types.SimpleNamespace(**{**base, **kw})


class Settings(unittest.TestCase):
    def test_the_profile_s_machine_and_overrides(self):
        s = runner.guest_settings(args(), cells.cell("7.3-mmci"))
        self.assertEqual((s.mem, s.cpus, s.thp, s.numa, s.builtin, s.panic_on_oops),
                         (16384, 4, None, (8192, 8192), True, True))
        s = runner.guest_settings(args(mem=8192, append=["x=1"]), cells.cell("7.3-never"))
        self.assertEqual((s.mem, s.cpus, s.thp, s.numa, s.builtin, s.append), (8192, 2, "never", (), False,
                                                                                ["x=1"]))

    def test_the_flags_that_reproduce_a_run(self):
        self.assertEqual(runner.run_flags(args(), cells.cell("7.3-always")),
                         ["--cell", "7.3-always", "--out", "/tmp/lab-repro"])
        flags = runner.run_flags(args(source="/nonexistent/linux", kasan=True, mutant="a-recursive-mmap-lock",
                                      dmirror="/nonexistent/dmirror"), cells.cell("7.3-madvise"))
        self.assertEqual(flags, ["--cell", "7.3-madvise", "--dmirror", "/nonexistent/dmirror", "--source",
                                 "/nonexistent/linux", "--kasan", "--mutant", "a-recursive-mmap-lock",
                                 "--out", "/tmp/lab-repro"])


class Traces(unittest.TestCase):
    def test_merged_traces_leave_out_a_case_a_fault_cut_short(self):
        bs, saved = recorded_boots()
        with tempfile.TemporaryDirectory() as d:
            for b in bs:       # one trace per boot, as the guest wrote them
                t = os.path.join(d, f"boot-{b.number}", "results", "dmirror-traces")
                os.makedirs(t)
                for name in ("hmm.hmm_device_private.open_close",
                             "hmm.hmm_device_coherent.migrate_anon_huge_err"):
                    with open(os.path.join(t, name + ".trace"), "w") as f:
                        f.write(f"# boot {b.number}\n")
                b.dir = os.path.join(d, f"boot-{b.number}")
            results = {"dmirror": {"hmm.hmm_device_coherent.migrate_anon_huge_err": {"verdict": "crash"},
                                   "hmm.hmm_device_private.open_close": {"verdict": "pass"}}}
            dest = runner.merge_traces(bs, results, os.path.join(d, "merged"))
            self.assertEqual(os.listdir(dest), ["hmm.hmm_device_private.open_close.trace"])
            self.assertEqual(read(dest, "hmm.hmm_device_private.open_close.trace"), "# boot 3\n")

    def test_recorded_for_swift_test_with_cell_json(self):
        with tempfile.TemporaryDirectory() as root:
            dest, n = runner.record_traces(cells.cell("7.3-always"), "7.3.4", fixture("kernel-traces", "7.3"),
                                           root)
            self.assertEqual((dest, n), (os.path.join(root, "7.3-always"), 4))
            self.assertEqual(json.loads(read(dest, "cell.json")),
                             {"cell": "7.3-always", "release": "7.3.4", "thp": "always", "test_hmm": "m",
                              "profile": "lab", "coherent": True, "findings": {}})
            self.assertEqual(sorted(os.listdir(dest))[0], "cell.json")

    def test_cell_json_carries_the_kernel_findings_of_the_summary(self):
        gup = "hmm.hmm_device_private.hmm_gup_test"
        huge = "hmm.hmm_device_coherent.migrate_anon_huge_err"
        summary = {
            "verdicts": {"kselftest": {gup: "pass", huge: "crash"}, "dmirror": {gup: "fail", huge: "crash"}},
            "findings": [
                {"case": huge, "kinds": ["kselftest: kernel fault (boot 1): BUG: kernel NULL pointer\n"
                                         "dereference", "dmirror: kernel fault (boot 2): BUG: x"]},
                {"case": gup, "kinds": ["dmirror: 1 new splat(s): WARNING: at mm/gup.c:3047 "
                                        "internal_get_user_pages_fast"]},
                {"case": "rmmod", "kinds": ["1 new splat(s): WARNING: at mm/memremap.c"]},
                {"case": "hmm.hmm_device_private.long", "kinds": ["fails in both suites: " + "x" * 400]},
            ]}
        summary["verdicts"]["kselftest"]["hmm.hmm_device_private.long"] = "fail"
        with tempfile.TemporaryDirectory() as root:
            dest, _ = runner.record_traces(cells.cell("6.1-madvise"), "6.1.176",
                                           fixture("kernel-traces", "7.3"), root, summary=summary)
            found = json.loads(read(dest, "cell.json"))["findings"]
        self.assertEqual(list(found), sorted(found))
        self.assertEqual(found[huge], "kselftest: kernel fault (boot 1): BUG: kernel NULL pointer "
                                      "dereference; dmirror: kernel fault (boot 2): BUG: x")
        self.assertEqual(found[gup], "dmirror: 1 new splat(s): WARNING: at mm/gup.c:3047 "
                                     "internal_get_user_pages_fast")
        self.assertNotIn("rmmod", found)           # a lab step's finding names no case
        self.assertEqual(len(found["hmm.hmm_device_private.long"]), 300)
        self.assertTrue(all("\n" not in v for v in found.values()))


if __name__ == "__main__":
    unittest.main()
