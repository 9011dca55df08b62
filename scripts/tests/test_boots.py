import json
import os
import unittest

from dmirror_lab import boots, qemu
from tests.support import captured, fixture, read

ALWAYS = fixture("boots", "always")


def recorded_boots():
    """The three boots of a real 7.3-always run: a C case oopsed the kernel (boot 1),
    the same case in dmirror did (boot 2), and boot 3 ran what was left."""
    saved = json.loads(read("boots", "always", "boots.json"))
    out = []
    for saved_boot in saved["boots"]:
        b = {**saved_boot, "dir": os.path.join(ALWAYS, saved_boot["dir"])}
        out.append(boots.Boot(**{**b, "faulted": tuple(b["faulted"]) if b["faulted"] else None}))
    return out, saved


ERR = "hmm.hmm_device_coherent.migrate_anon_huge_err"


class Plan(unittest.TestCase):
    NAMES = ["hmm.a.one", "hmm.a.benchmark_thp_migration", "hmm.a.two", "hmm.b.one"]

    def test_bench_only_and_upto(self):
        todo, notrun = boots.plan(self.NAMES, self.NAMES, False, None)
        self.assertEqual(todo["kselftest"], ["hmm.a.one", "hmm.a.two", "hmm.b.one"])
        self.assertEqual(notrun["dmirror"], {"hmm.a.benchmark_thp_migration":
                                             "benchmark_thp_migration runs only with --bench"})
        todo, notrun = boots.plan(self.NAMES, [], True, r"\.a\.")
        self.assertEqual(todo, {"kselftest": ["hmm.a.one", "hmm.a.benchmark_thp_migration", "hmm.a.two"],
                                "dmirror": []})
        self.assertEqual(notrun["kselftest"], {"hmm.b.one": "filtered out by --only"})
        todo, notrun = boots.plan(self.NAMES, self.NAMES, False, r"^hmm\.a\.", "hmm.a.one")
        self.assertEqual(todo["dmirror"], ["hmm.a.one"])
        self.assertEqual(notrun["dmirror"]["hmm.a.two"], "after hmm.a.one (--upto)")


class Resume(unittest.TestCase):
    def test_after_a_c_case_oopsed_the_next_boot_runs_the_rest(self):
        bs, _ = recorded_boots()
        b1 = bs[0]
        self.assertEqual((b1.ended, b1.faulted), ("fault", ("kselftest", ERR)))
        done = boots.finished(b1)
        at = b1.todo["kselftest"].index(ERR)
        # every case before it, and the one that oopsed (it ended: the guest stopped after it)
        self.assertEqual(done["kselftest"], set(b1.todo["kselftest"][:at + 1]))
        nxt = boots.next_todo(b1, done)
        self.assertEqual(nxt["kselftest"], b1.todo["kselftest"][at + 1:])
        self.assertNotIn(ERR, nxt["kselftest"])
        self.assertEqual(nxt["dmirror"], b1.todo["dmirror"])
        self.assertEqual(nxt, bs[1].todo)

    def test_cases_that_began_after_the_fault_run_again(self):
        bs, _ = recorded_boots()
        b2 = bs[1]
        self.assertEqual(len(b2.after_fault), 8)
        done = boots.finished(b2)
        self.assertNotIn("hmm.hmm_device_coherent.migrate_anon_huge_zero_err", done["dmirror"])
        nxt = boots.next_todo(b2, done)
        self.assertEqual(nxt, {"kselftest": [], "dmirror": [c for _, c in b2.after_fault]})
        self.assertEqual(nxt, bs[2].todo)
        self.assertIsNone(boots.next_todo(bs[2], boots.finished(bs[2])))

    def test_a_c_harness_without_r_is_not_resumed(self):
        bs, saved = recorded_boots()
        nxt = boots.next_todo(bs[0], boots.finished(bs[0]), c_resumable=False)
        self.assertEqual(nxt, {"kselftest": [], "dmirror": bs[0].todo["dmirror"]})
        results = boots.merge(bs[:1], saved["notrun"], c_resumable=False)["kselftest"]
        self.assertEqual(results["hmm.hmm_device_coherent.userfaultfd_read"],
                         {"verdict": "not run", "secs": 0,
                          "detail": "after a kernel fault: this tree's harness has no -r to start at "
                                    "the next case"})

    def test_a_boot_that_ran_nothing_is_not_repeated(self):
        todo = {"kselftest": ["a"], "dmirror": ["b"]}
        early = boots.Boot(1, "/nonexistent", todo, "early", None, "the share did not mount")
        self.assertIsNone(boots.next_todo(early, {"kselftest": set(), "dmirror": set()}))
        stop = boots.Boot(1, "/nonexistent", todo, "stop", None, "lockdep-off")
        self.assertEqual(boots.next_todo(stop, {"kselftest": {"a"}, "dmirror": set()}),
                         {"kselftest": [], "dmirror": ["b"]})


class Outcome(unittest.TestCase):
    def watcher(self, *lines):
        w = qemu.ConsoleWatcher("/nonexistent", 0, {})
        with captured():
            for i, line in enumerate(lines):
                w.line(line, now=float(i))
        return w

    def test_a_recorded_oops(self):
        w = self.watcher(*read("boots", "always", "boot-1", "console.log").splitlines())
        self.assertEqual(boots.outcome(w, "fault"),
                         ("fault", ("kselftest", ERR),
                          "BUG: kernel NULL pointer dereference, address: 0000000000000008"))

    def test_hang_stop_done_and_silence(self):
        w = self.watcher("dmirror-lab: BEGIN kselftest hmm.x.y")
        self.assertEqual(boots.outcome(w, "hang")[:2], ("hang", ("kselftest", "hmm.x.y")))
        self.assertEqual(boots.outcome(w, "exit")[0], "fault")   # reset inside a case
        w = self.watcher("dmirror-lab: STOP hang kselftest hmm.x.y (tasks in D state: 12 )")
        self.assertEqual(boots.outcome(w, "exit")[:2], ("hang", ("kselftest", "hmm.x.y")))
        w = self.watcher("dmirror-lab: STOP lockdep-off (it reported during the C suite)")
        self.assertEqual(boots.outcome(w, "exit")[:2], ("stop", None))
        w = self.watcher("dmirror-lab: done uptime=9")
        self.assertEqual(boots.outcome(w, "exit"), ("done", None, ""))
        w = self.watcher("dmirror-lab: init start uptime=5")
        self.assertEqual(boots.outcome(w, "exit")[0], "early")


class Merge(unittest.TestCase):
    def test_three_boots_one_result_per_case(self):
        bs, saved = recorded_boots()
        results = boots.merge(bs, saved["notrun"])
        c, d = results["kselftest"], results["dmirror"]
        self.assertEqual(len(c), 78)
        self.assertEqual(len(d), 78)
        self.assertEqual(c[ERR]["verdict"], "crash")
        self.assertEqual(c[ERR]["detail"], "kernel fault (boot 1): BUG: kernel NULL pointer dereference, "
                                           "address: 0000000000000008")
        self.assertEqual(d[ERR]["boot"], 2)
        # the case after the fault ran again in boot 3, and that result is the one kept
        zero_err = "hmm.hmm_device_coherent.migrate_anon_huge_zero_err"
        self.assertEqual((d[zero_err]["verdict"], d[zero_err]["boot"]), ("pass", 3))
        self.assertEqual(c[zero_err]["boot"], 2)
        self.assertEqual(c["hmm.hmm_device_coherent.migrate_multiple"]["verdict"], "fail")
        self.assertEqual(c["hmm.hmm_device_private.benchmark_thp_migration"]["verdict"], "not run")

    def test_a_fault_in_an_explore_scenario_is_no_suite_case(self):
        bs, saved = recorded_boots()
        last = bs[-1]
        bs[-1] = boots.Boot(last.number, last.dir, last.todo, "fault", ("dmirror", "explore.migrate-read"),
                            "BUG: unable to handle page fault")
        d = boots.merge(bs, saved["notrun"])["dmirror"]
        self.assertNotIn("explore.migrate-read", d)
        self.assertEqual(len(d), 78)

    def test_kernel_log_and_suite_times(self):
        bs, _ = recorded_boots()
        log = boots.kernel_log(bs)
        lines = log.splitlines()
        self.assertEqual(lines[0], "===== dmirror-lab: boot 1 (fault: BUG: kernel NULL pointer dereference, "
                                   "address: 0000000000000008) =====")
        self.assertIn("===== dmirror-lab: boot 3 (done) =====", lines)
        # boot 1's C suite ends at the END of the case that oopsed; boot 2's C suite ran 8 cases
        times = boots.suite_times(log)
        self.assertEqual(sorted(times), ["dmirror", "kselftest"])
        self.assertGreater(times["kselftest"], 60)
        self.assertGreater(times["dmirror"], 40)

    def test_suite_times_of_one_boot(self):
        log = "\n".join([
            "[   7.80] dmirror-lab: SUITE kselftest cases=2 start uptime=7.81",
            "[   8.00] dmirror-lab: END kselftest a rc=0",
            "[  10.00] dmirror-lab: SUITE kselftest end uptime=10.01",
            "[  11.00] dmirror-lab: SUITE dmirror cases=2 start uptime=11.01",
            "[  12.50] dmirror-lab: END dmirror a rc=0",
            "===== dmirror-lab: boot 2 (done) =====",
            "[   5.00] dmirror-lab: SUITE dmirror cases=1 start uptime=5.01",
            "[   6.00] dmirror-lab: SUITE dmirror end uptime=6.01",
        ])
        self.assertEqual(boots.suite_times(log), {"kselftest": 2.2, "dmirror": 2.5})


if __name__ == "__main__":
    unittest.main()
