import os
import tempfile
import unittest

from dmirror_lab import boots, explore

OOPS_LOG = """[   76.024954] dmirror-lab: BEGIN dmirror explore.migrate-read
[   76.064751] BUG: unable to handle page fault for address: ff1100fcdf1fd000
[   76.065269] #PF: supervisor read access in kernel mode
[   76.066667] CPU: 1 UID: 0 PID: 643 Comm: dmirror Tainted: G        W           7.3.4 #1
[   76.067199] RIP: 0010:dmirror_do_read+0x65/0x80 [test_hmm]
[   76.071173] Call Trace:
[   76.071474]  dmirror_migrate_to_device.constprop.0+0x64c/0x6de [test_hmm]
"""
SIM_OOPS = {"kind": "kernel oops", "count": 6, "first": "--seed 4 --permille 500",
            "text": "BUG: unable to handle page fault for the direct-map address of PFN 0x1000000\n"
                    "  #PF: supervisor read access in kernel mode\n  RIP: dmirror_do_read\n"}


def boot(d, number, ended, faulted=None, explore_results=None, console=""):
    bdir = os.path.join(d, f"boot-{number}")
    os.makedirs(os.path.join(bdir, "results", "extra", "explore"), exist_ok=True)
    for name, doc in (explore_results or {}).items():
        with open(os.path.join(bdir, "results", "extra", "explore", name + ".json"), "w") as f:
            f.write(doc)
        with open(os.path.join(bdir, "results", "extra", "explore", name + ".rc"), "w") as f:
            f.write("0\n")
    with open(os.path.join(bdir, "console.log"), "w") as f:
        f.write(console)
    return boots.Boot(number, bdir, {}, ended, faulted)


class Pending(unittest.TestCase):
    def test_a_fault_leaves_the_scenarios_after_it(self):
        with tempfile.TemporaryDirectory() as d:
            b = boot(d, 1, "fault", ("dmirror", "explore.migrate-read"), {"read-munmap": "{}"})
            names = ["read-munmap", "migrate-read", "oom-reap", "read-retry-stress"]
            self.assertEqual(explore.pending(names, [b]), ["oom-reap", "read-retry-stress"])

    def test_a_boot_that_finished_leaves_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            b = boot(d, 1, "done", None, {"read-munmap": "{}"})
            self.assertEqual(explore.pending(["read-munmap", "oom-reap"], [b]), [])

    def test_more_boots_goes_on_until_nothing_is_left(self):
        with tempfile.TemporaryDirectory() as d:
            first = boot(d, 1, "fault", ("dmirror", "explore.fork-cow-device"), {"read-munmap": "{}"})
            names = ["read-munmap", "fork-cow-device", "migrate-read", "oom-reap"]
            scripts = []

            def run_boots(out, files):
                with open(files[0][1]) as f:
                    scripts.append(f.read())
                if len(scripts) == 1:
                    return [boot(out, 1, "fault", ("dmirror", "explore.migrate-read"))]
                return [boot(out, 1, "done", None, {"oom-reap": "{}"})]
            added = explore.more_boots(d, names, 5, [first], run_boots,
                                       lambda rest, n: "".join(f"run {x} {n}\n" for x in rest))
            self.assertEqual(len(added), 2)
            self.assertIn("run migrate-read 5\nrun oom-reap 5\n", scripts[0])
            self.assertIn("run oom-reap 5\n", scripts[1])
            self.assertNotIn("migrate-read", scripts[1])

    def test_more_boots_stops_when_a_boot_runs_none_of_them(self):
        with tempfile.TemporaryDirectory() as d:
            first = boot(d, 1, "fault", ("dmirror", "explore.fork-cow-device"))
            calls = []

            def run_boots(out, files):
                calls.append(out)
                return [boot(out, 1, "early")]
            explore.more_boots(d, ["fork-cow-device", "oom-reap"], 5, [first], run_boots, lambda r, n: "")
            self.assertEqual(len(calls), 1)


class Judge(unittest.TestCase):
    def splat(self, d):
        b = boot(d, 1, "fault", ("dmirror", "explore.migrate-read"), console=OOPS_LOG)
        return explore.scenario_splats([b])["migrate-read"]

    def test_an_oops_in_the_same_function_is_explained(self):
        with tempfile.TemporaryDirectory() as d:
            j = explore.judge("migrate-read", None, self.splat(d), {"outcomes": [], "reports": [SIM_OOPS]})
            self.assertEqual(j["unexplained"], [])
            self.assertEqual(len(j["explained"]), 1)
            self.assertEqual(j["explained"][0]["sim_schedules"], 6)

    def test_an_oops_elsewhere_or_none_is_unexplained(self):
        with tempfile.TemporaryDirectory() as d:
            other = dict(SIM_OOPS, text=SIM_OOPS["text"].replace("dmirror_do_read", "dmirror_do_write"))
            for reports in ([], [other], [{"kind": "deadlock", "text": "deadlock: ..."}]):
                j = explore.judge("migrate-read", None, self.splat(d), {"outcomes": [], "reports": reports})
                self.assertEqual(len(j["unexplained"]), 1, reports)

    def test_kernel_outcomes_outside_the_set(self):
        kernel = {"schedules": 3,
                  "outcomes": [{"count": 2, "lines": ["a", "b"]}, {"count": 1, "lines": ["c"]}]}
        j = explore.judge("oom-reap", kernel, [], {"outcomes": [{"lines": ["a", "b"]}], "reports": []})
        self.assertEqual(j["outside"], [{"count": 1, "lines": ["c"]}])
        self.assertEqual((j["kernel"], j["repetitions"], j["sim"]), (2, 3, 1))

    def test_the_stress_counts_only_stale_reads(self):
        clean = ["final: READ p0+32 -> ok cpages=32 faults=1 data=[0,0]"]
        stale = ["final: READ p0+32 -> ok cpages=32 faults=0 data=[5,0]"]
        kernel = {"schedules": 3, "outcomes": [{"count": 2, "lines": clean}, {"count": 1, "lines": stale}]}
        j = explore.judge(explore.STRESS, kernel, [], {"outcomes": [{"lines": ["other"]}], "reports": []})
        self.assertEqual(j["outside"], [{"count": 1, "lines": stale}])

    def test_a_deeper_search_joins_the_default_one(self):
        a = {"outcomes": [{"lines": ["a"]}], "reports": []}
        b = {"outcomes": [{"lines": ["c"]}], "reports": [SIM_OOPS]}
        kernel = {"schedules": 2, "outcomes": [{"count": 1, "lines": ["a"]}, {"count": 1, "lines": ["c"]}]}
        self.assertEqual(len(explore.judge("oom-reap", kernel, [], a)["outside"]), 1)
        j = explore.judge("oom-reap", kernel, [], explore.merged(a, b))
        self.assertEqual(j["outside"], [])
        self.assertEqual(explore.merged(None, b)["reports"], [SIM_OOPS])

    def test_lockdep_splats_match_their_checker(self):
        s = {"text": "WARNING: possible recursive locking detected\n...",
             "title": "WARNING: possible recursive"}
        self.assertTrue(explore.explains({"kind": "recursive locking", "text": "x"}, s))
        self.assertFalse(explore.explains({"kind": "circular locking dependency", "text": "x"}, s))


if __name__ == "__main__":
    unittest.main()
