import json
import os
import shutil
import stat
import sys
import tempfile
import unittest

from dmirror_lab import dmirror
from tests.support import fixture, read


class SimulatorReplay(unittest.TestCase):
    def test_the_simulator_is_configured_as_the_cell(self):
        self.assertEqual(
            dmirror.sim_run_command("/d", "6.1.176", "never", "/o/sim-traces", ["hmm.a.b", "hmm.a.c"]),
            ["/d", "run", "--backend", "sim", "--sim-release", "6.1.176", "--sim-thp", "never",
             "--trace", "/o/sim-traces", "-r", "hmm.a.b", "-r", "hmm.a.c"],
        )

    def test_nothing_traced_is_not_compared(self):
        with tempfile.TemporaryDirectory() as out:
            self.assertEqual(
                dmirror.compare_traces(out, "/d", "7.3.4", "madvise", os.path.join(out, "none")),
                "traces: not compared (dmirror recorded no trace in the guest)",
            )
            traces = os.path.join(out, "k")
            os.makedirs(traces)
            shutil.copy(fixture("kernel-traces", "7.3", "hmm2.hmm2_device_private.snapshot.trace"), traces)
            self.assertEqual(
                dmirror.compare_traces(out, "/d", None, "madvise", traces),
                "traces: not compared (the guest did not report its release and THP mode)",
            )


class CompareTraces(unittest.TestCase):
    def test_recorded_run(self):
        verdicts, details = dmirror.trace_verdicts(json.loads(read("traces", "compare-traces.json")))
        tally = {}
        for v in verdicts.values():
            tally[v] = tally.get(v, 0) + 1
        self.assertEqual(tally, {"same": 74, "nondet": 2})
        self.assertEqual(verdicts["hmm.hmm_device_private.anon_teardown"], "nondet")
        self.assertEqual(details, {})

    def test_differs_and_missing(self):
        verdicts, details = dmirror.trace_verdicts(json.loads(read("traces", "compare-traces-differs.json")))
        self.assertEqual(
            verdicts,
            {
                "hmm.hmm_device_private.anon_read": "differs",
                "hmm.hmm_device_private.anon_teardown": "nondet",
                "hmm.hmm_device_private.exclusive": "missing in A",
                "hmm.hmm_device_private.migrate": "same",
                "hmm.hmm_device_private.open_close": "missing in B",
            },
        )
        a, b = details["hmm.hmm_device_private.anon_read"]
        self.assertTrue(a.startswith("A:3: 0 HMM_DMIRROR_READ ") and "cpages=1024 " in a)
        self.assertTrue(b.startswith("B:3: 0 HMM_DMIRROR_READ ") and "cpages=91024 " in b)

    def test_rendered_text_is_dmirror_s_own(self):
        for name in ("compare-traces", "compare-traces-differs"):
            self.assertEqual(
                dmirror.render_traces(json.loads(read("traces", name + ".json"))),
                read("traces", name + ".txt"),
            )

    def test_end_of_trace(self):
        self.assertEqual(dmirror.side_line("B", {"line": 9, "text": None}), "B:9: (end of trace)")

    def test_read_from_the_report_folder(self):
        with tempfile.TemporaryDirectory() as out:
            self.assertEqual(dmirror.read_trace_comparison(out), ({}, {}))
            shutil.copy(fixture("traces", "compare-traces-differs.json"), os.path.join(out, "traces.json"))
            verdicts, _ = dmirror.read_trace_comparison(out)
        self.assertEqual(verdicts["hmm.hmm_device_private.migrate"], "same")


class Abi(unittest.TestCase):
    def test_documents(self):
        self.assertEqual(dmirror.abi_generation(json.loads(read("abi-7.3.4.json"))), "7.3")
        self.assertEqual(dmirror.abi_generation(json.loads(read("abi-6.1.0-18-amd64.json"))), "6.1")
        self.assertIsNone(dmirror.abi_generation({"release": "x"}))
        self.assertIsNone(dmirror.abi_generation(None))

    def fake_dmirror(self, tmp, stdout_fixture, stderr, rc):
        """An executable that answers `abi` the way dmirror does."""
        path = os.path.join(tmp, "dmirror")
        body = read(stdout_fixture) if stdout_fixture else ""
        with open(path, "w") as f:
            f.write(
                f"#!{sys.executable}\nimport sys\nsys.stdout.write({body!r})\n"
                f"sys.stderr.write({stderr!r})\nsys.exit({rc})\n"
            )
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    def test_asking(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(
                dmirror.ask_abi(self.fake_dmirror(tmp, "abi-7.3.4.json", "", 0), "7.3.4"), ("7.3", None)
            )
            too_old = (
                'dmirror: abi: "5.4.0" is not a Linux release of 5.7 or later (test_hmm appeared in 5.7)\n'
            )
            abi, why = dmirror.ask_abi(self.fake_dmirror(tmp, None, too_old, 4), "5.4.0")
        self.assertIsNone(abi)
        self.assertEqual(why, "dmirror abi 5.4.0: " + too_old.strip())


if __name__ == "__main__":
    unittest.main()
