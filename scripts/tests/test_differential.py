import os
import tempfile
import unittest

from dmirror_lab import cli, differential
from dmirror_lab.common import LabError


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class Scripts(unittest.TestCase):
    def test_scenario_script_runs_every_file_against_the_simulator(self):
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "a b.scn"), os.path.join(d, "c.scn")
            write(a, "mmap a 1 anon\n")
            write(b, "mmap a 1 anon\n")
            text, files = differential.scenario_script([a, b])
        self.assertIn("dmirror scenario --backend kernel --against-sim --kmsg-markers --format jsonl", text)
        self.assertIn("'/lab/scenarios-in/scn-000-a b.scn' /lab/scenarios-in/scn-001-c.scn",
                      text)
        self.assertEqual([n for n, _ in files],
                         ["scenarios-in/scn-000-a b.scn", "scenarios-in/scn-001-c.scn"])

    def test_missing_file_and_bad_counts_are_refused(self):
        with self.assertRaises(LabError):
            differential.scenario_script(["/nonexistent.scn"])
        with self.assertRaises(LabError):
            differential.fuzz_script(1, 0, 20)

    def test_fuzz_script_bounds_shrinking(self):
        text, files = differential.fuzz_script(7, 50, 12)
        self.assertIn("--backend kernel --against-sim --kmsg-markers --seed 7 --count 50 --length 12", text)
        self.assertIn(f"--max-shrink {differential.MAX_SHRINK} --out fuzz", text)
        self.assertEqual(files, [])

    def test_cli_parses_both(self):
        a = cli.parser().parse_args(["fuzz", "--seed", "3", "--count", "9", "--out", "/tmp/x"])
        self.assertEqual((a.cmd, a.seed, a.count, a.length), ("fuzz", 3, 9, 20))
        a = cli.parser().parse_args(["scenario", "x.scn", "y.scn", "--out", "/tmp/x"])
        self.assertEqual(a.files, ["x.scn", "y.scn"])


class Reports(unittest.TestCase):
    S0, S1 = "/lab/scenarios-in/scn-000-a.scn", "/lab/scenarios-in/scn-001-b.scn"
    WHERE = "result line 1: kernel `a`, simulator `b`"
    JSONL = "\n".join([
        '{"backend": {"name": "kernel"}, "scenarios": 2}',
        '{"scenario": "' + S0 + '", "passed": true, "reasons": [], "lines": ["1: x => ok"]}',
        '{"scenario": "' + S1 + '", "passed": true, "reasons": [], "lines": ["1: x => ok"]}',
        '{"totals": {"passed": 2, "failed": 0}, "passed": true}',
        '{"scenario": "' + S1 + '", "against_sim": "' + WHERE + '"}',
        '{"against_sim": {"same": 1, "differ": 1}}',
        'not json',
    ])

    def test_scenario_differences(self):
        ran, differs = differential.scenario_differences(self.JSONL)
        self.assertEqual(ran, 2)
        self.assertEqual(differs, [(self.S1, self.WHERE)])

    def test_fuzz_summary(self):
        text = ("# fuzz-1-4: differs from the simulator: result line 3: kernel `x`, "
                "simulator `y`\n"
                "# shrunk fuzz-1-4 (differs): 20 → 3 statements (41 runs): fuzz/fuzz-1-4.diff.scn\n"
                "# fuzz: 50 scenarios in 9.00 s: 5.6 scenarios/s (backend kernel, -j 1, length 20, seed 1); "
                "0 failed, 0 invariant violation(s); 1 differ from the simulator "
                "(simulated Linux 7.3 test_hmm)\n")
        summary, differs, shrunk = differential.fuzz_summary(text)
        self.assertTrue(summary.startswith("# fuzz: 50 scenarios"))
        self.assertEqual(len(differs), 1)
        self.assertEqual(len(shrunk), 1)

    def test_report_reads_the_last_boot_and_fails_on_a_difference(self):
        with tempfile.TemporaryDirectory() as out:
            write(os.path.join(out, "guest", "boot-1", "results", "extra", "scenario.jsonl"), "")
            write(os.path.join(out, "guest", "boot-2", "results", "extra", "scenario.jsonl"), self.JSONL)
            self.assertEqual(differential.report(out, "scenario"), 1)
            write(os.path.join(out, "guest", "boot-2", "results", "extra", "scenario.jsonl"),
                  self.JSONL.split('\n{"scenario": "' + self.S1 + '", "against')[0])
            self.assertEqual(differential.report(out, "scenario"), 0)

    def test_report_without_results_fails(self):
        with tempfile.TemporaryDirectory() as out:
            self.assertEqual(differential.report(out, "fuzz"), 1)

    def test_fuzz_report_copies_shrunk_scenarios(self):
        with tempfile.TemporaryDirectory() as out:
            d = os.path.join(out, "guest", "boot-1", "results", "extra")
            write(os.path.join(d, "fuzz.out"), "# fuzz: 5 scenarios in 1.00 s: 5.0 scenarios/s; 0 failed\n")
            write(os.path.join(d, "fuzz.rc"), "1\n")
            write(os.path.join(d, "fuzz", "fuzz-1-2.diff.scn"), "mmap a 1 anon\n")
            self.assertEqual(differential.report(out, "fuzz"), 1)
            self.assertTrue(os.path.exists(os.path.join(out, "differences", "fuzz-1-2.diff.scn")))


if __name__ == "__main__":
    unittest.main()
