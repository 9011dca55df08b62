import os
import shutil
import tempfile
import unittest

from dmirror_lab import traces
from tests.support import fixture

SNAPSHOT = fixture("kernel-traces", "7.3", "hmm2.hmm2_device_private.snapshot.trace")


class Lines(unittest.TestCase):
    def test_every_shape_of_a_recorded_trace(self):
        cmds, end = traces.read_trace(SNAPSHOT)
        self.assertEqual(end, "pass")
        self.assertEqual([c["command"] for c in cmds],
                         ["open", "open", "HMM_DMIRROR_MIGRATE_TO_DEV", "HMM_DMIRROR_MIGRATE_TO_DEV",
                          "HMM_DMIRROR_SNAPSHOT", "close", "close"])
        self.assertEqual(traces.identity(cmds[0]), "0 open unit=0")
        self.assertEqual(traces.outcome_text(cmds[0]), "ok")
        migrate = cmds[2]
        self.assertEqual(migrate["args"], ["unit=0", "npages=1", "addr=aligned"])
        self.assertEqual((migrate["errno"], migrate["cpages"], migrate["faults"], migrate["data"]),
                         (None, "1", "0", "fnv1a64:b93a0c83ce3b6325"))
        # the snapshot is run-length hex with spaces in it
        self.assertEqual(cmds[4]["snapshot"], "ffx2 11 01 02 22 00")
        self.assertEqual(traces.outcome_text(cmds[4]), "cpages=7 faults=0 snapshot=ffx2 11 01 02 22 00")

    def test_errno_flags_and_comments(self):
        self.assertIsNone(traces.parse_line("# dmirror command trace v1: x"))
        self.assertIsNone(traces.parse_line("   "))
        c = traces.parse_line("0 HMM_DMIRROR_WRITE unit=0 npages=1024 addr=aligned errno=EPERM")
        self.assertEqual((c["errno"], c["cpages"]), ("EPERM", None))
        self.assertEqual(traces.outcome_text(c), "errno=EPERM")
        f = traces.parse_line("1 HMM_DMIRROR_FLAGS unit=2 flags=0x1 addr=aligned ok cpages=0 faults=0")
        self.assertEqual((f["pid"], f["args"]), ("1", ["unit=2", "flags=0x1", "addr=aligned"]))
        self.assertEqual(traces.parse_line("end assert"), {"end": "assert"})


class Compare(unittest.TestCase):
    def edited(self, old, new):
        """The snapshot trace with one text replaced, as another kernel's answer."""
        with open(SNAPSHOT) as f:
            text = f.read()
        self.assertIn(old, text)
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "t.trace")
        with open(path, "w") as f:
            f.write(text.replace(old, new))
        return traces.read_trace(path)

    def test_same(self):
        self.assertEqual(traces.compare_case(traces.read_trace(SNAPSHOT), traces.read_trace(SNAPSHOT)), [])

    def test_a_changed_result_names_the_command_and_fields(self):
        other = self.edited("snapshot=ffx2 11 01 02 22 00", "snapshot=ffx2 11 01 01 22 00")
        self.assertEqual(traces.compare_case(traces.read_trace(SNAPSHOT), other), [{
            "index": 5, "command": "0 HMM_DMIRROR_SNAPSHOT unit=0 npages=7 addr=aligned",
            "fields": ["snapshot"],
            "before": "cpages=7 faults=0 snapshot=ffx2 11 01 02 22 00",
            "after": "cpages=7 faults=0 snapshot=ffx2 11 01 01 22 00"}])
        nxt = "\n0 HMM_DMIRROR_MIGRATE_TO_DEV unit=1"
        errno = self.edited("npages=1 addr=aligned ok cpages=1 faults=0 data=fnv1a64:b93a0c83ce3b6325" + nxt,
                            "npages=1 addr=aligned errno=ENOENT" + nxt)
        (d,) = traces.compare_case(traces.read_trace(SNAPSHOT), errno)
        self.assertEqual((d["index"], d["fields"], d["before"], d["after"]),
                         (3, ["errno", "cpages", "faults", "data"],
                          "cpages=1 faults=0 data=fnv1a64:b93a0c83ce3b6325", "errno=ENOENT"))

    def test_a_diverging_sequence_stops_at_the_first_other_command(self):
        other = self.edited("HMM_DMIRROR_SNAPSHOT unit=0 npages=7", "HMM_DMIRROR_SNAPSHOT unit=0 npages=8")
        (d,) = traces.compare_case(traces.read_trace(SNAPSHOT), other)
        self.assertEqual((d["index"], d["fields"]), (5, ["command"]))
        self.assertTrue(d["after"].endswith("npages=8 addr=aligned"))

    def test_a_shorter_trace_and_another_end(self):
        short = self.edited("0 close unit=1 ok\nend pass", "end assert")
        diffs = traces.compare_case(traces.read_trace(SNAPSHOT), short)
        self.assertEqual([(d["index"], d["fields"], d["before"], d["after"]) for d in diffs],
                         [(7, ["command"], "0 close unit=1", "(trace ends)"), (8, ["end"], "pass", "assert")])

    def test_folders(self):
        a = fixture("kernel-traces", "7.3")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        shutil.copy(SNAPSHOT, d)
        shutil.copy(os.path.join(a, "hmm.hmm_device_private.migrate_fault.trace"),
                    os.path.join(d, "hmm.hmm_device_private.extra.trace"))
        changed, only_a, only_b = traces.compare_dirs(a, d)
        self.assertEqual(changed, {})
        self.assertNotIn("hmm.hmm_device_private.migrate_fault", traces.compare_dirs(a, d, skip=[
            "hmm.hmm_device_private.migrate_fault"])[1])
        self.assertEqual(only_b, ["hmm.hmm_device_private.extra"])
        self.assertIn("hmm.hmm_device_private.migrate_fault", only_a)


if __name__ == "__main__":
    unittest.main()
