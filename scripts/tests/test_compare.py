import tempfile
import unittest

from dmirror_lab import compare
from tests.support import fixture, read

BASE, WITH = fixture("compare", "madvise"), fixture("compare", "always")


class Document(unittest.TestCase):
    """7.3-madvise against 7.3-always, two real runs (trimmed to six cases)."""

    def setUp(self):
        self.doc = compare.document(BASE, WITH)

    def test_cases_whose_verdict_changed(self):
        self.assertEqual(
            [(v["suite"], v["case"], v["before"], v["after"]) for v in self.doc["verdicts"]],
            [
                ("kselftest", "hmm.hmm_device_coherent.migrate_multiple", "pass", "fail"),
                ("kselftest", "hmm.hmm_device_coherent.hmm_gup_test", "pass", "fail"),
                ("kselftest", "hmm.hmm_device_coherent.migrate_anon_huge_err", "fail", "crash"),
                ("dmirror", "hmm.hmm_device_coherent.migrate_multiple", "pass", "fail"),
                ("dmirror", "hmm.hmm_device_coherent.hmm_gup_test", "pass", "fail"),
                ("dmirror", "hmm.hmm_device_coherent.migrate_anon_huge_err", "fail", "crash"),
            ],
        )

    def test_commands_whose_result_changed(self):
        cmds = self.doc["commands"]
        self.assertEqual(sorted(cmds), ["hmm.hmm_device_coherent.hmm_gup_test",
                                        "hmm.hmm_device_coherent.migrate_multiple"])
        back = cmds["hmm.hmm_device_coherent.migrate_multiple"][0]
        self.assertEqual((back["index"], back["command"], back["fields"], back["before"], back["after"]),
                         (3, "0 HMM_DMIRROR_MIGRATE_TO_SYS unit=2 npages=1024 addr=aligned", ["cpages"],
                          "cpages=1024 faults=0", "cpages=0 faults=0"))
        gup = cmds["hmm.hmm_device_coherent.hmm_gup_test"][0]
        self.assertEqual((gup["index"], gup["fields"], gup["after"]),
                         (2, ["errno", "cpages", "faults", "data"], "errno=ENOENT"))
        # anon_teardown races by design; the case a fault cut short has no trace on that side
        self.assertEqual(self.doc["not_compared"], ["hmm.hmm_device_coherent.anon_teardown",
                                                    "hmm.hmm_device_private.anon_teardown"])
        self.assertEqual(self.doc["traces_only_in_base"], ["hmm.hmm_device_coherent.migrate_anon_huge_err"])

    def test_splats_on_one_side(self):
        splats = self.doc["splats"]
        self.assertEqual([(s["case"], s["base"], s["with"], s["known"]) for s in splats if not s["known"]], [
            ("dmirror:hmm.hmm_device_coherent.migrate_anon_huge_err", 0, 1, False),
            ("kselftest:hmm.hmm_device_coherent.migrate_anon_huge_err", 0, 1, False)])
        self.assertEqual(splats[0]["head"][0],
                         "BUG: kernel NULL pointer dereference, address: 0000000000000008")
        # the known memremap warnings only change in number
        self.assertTrue(all(s["known"] for s in splats[2:]))

    def test_markdown(self):
        text = compare.markdown(self.doc)
        self.assertTrue(text.startswith("# 7.3-madvise (7.3.4) vs 7.3-always (7.3.4)\n"))
        self.assertIn("| kselftest | hmm.hmm_device_coherent.migrate_anon_huge_err | fail | crash |", text)
        self.assertIn("| hmm.hmm_device_coherent.migrate_multiple | #3 `0 HMM_DMIRROR_MIGRATE_TO_SYS unit=2 "
                      "npages=1024 addr=aligned` | cpages | `cpages=1024 faults=0` | `cpages=0 faults=0` |",
                      text)
        self.assertIn("- kselftest:hmm.hmm_device_coherent.migrate_anon_huge_err: BUG: kernel NULL pointer "
                      "dereference, address: 0000000000000008 (base x0, with x1) [NEW]", text)
        self.assertIn("| base | 65.332 s | 45.165 s | 0.691 |", text)
        self.assertIn("Unload: base ok, with ok.", text)

    def test_written(self):
        with tempfile.TemporaryDirectory() as out:
            text = compare.write(self.doc, out)
            self.assertEqual(read(out, "compare.md"), text)
            self.assertIn('"commands"', read(out, "compare.json"))

    def test_same_runs_change_nothing(self):
        doc = compare.document(BASE, BASE)
        self.assertEqual((doc["verdicts"], doc["commands"], doc["splats"]), ([], {}, []))
        self.assertIn("## Cases whose verdict changed\n\nNone.", compare.markdown(doc))


if __name__ == "__main__":
    unittest.main()
