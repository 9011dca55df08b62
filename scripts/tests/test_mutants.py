import unittest

from dmirror_lab import compare, mutants
from tests.support import fixture, read


class Patches(unittest.TestCase):
    def test_every_mutant_says_what_it_breaks_and_touches_only_test_hmm(self):
        found = mutants.patches()
        self.assertEqual(sorted(found), ["a-recursive-mmap-lock", "b-no-owner-filter", "c-no-read-retry",
                                         "d-leaked-device-page", "e-uncollected-entry"])
        for name, path in found.items():
            text = read(path)
            title, head = mutants.header(text)
            self.assertTrue(head.startswith(f"Mutant ({name[0]}), for `scripts/lab mutants`: {title}."), head)
            self.assertIn("What it breaks:", head)
            self.assertIn("Expected catch:", head)
            self.assertEqual(mutants.touched(text), ["lib/test_hmm.c"])
            self.assertTrue(mutants.module_only(mutants.touched(text)))

    def test_only_test_hmm_s_files_can_be_a_module_build(self):
        self.assertTrue(mutants.module_only(["lib/test_hmm.c", "lib/test_hmm_uapi.h"]))
        self.assertFalse(mutants.module_only(["lib/test_hmm.c", "mm/hmm.c"]))
        self.assertFalse(mutants.module_only([]))
        self.assertEqual(mutants.touched("--- a/mm/hmm.c\t2026\n+++ b/mm/hmm.c\t2026\n@@\n"), ["mm/hmm.c"])

    def test_an_unknown_mutant(self):
        with self.assertRaises(mutants.LabError) as e:
            mutants.patches("a-recursive-mmap-lock,zz")
        self.assertTrue(str(e.exception).startswith("no mutant zz in scripts/mutants; the mutants are "))


def doc(**kw):
    base = {"verdicts": [], "commands": {}, "splats": [], "unload": {"base": "ok", "with": "ok"}}
    return {**base, **kw}


class Detection(unittest.TestCase):
    STOCK = {"traces": {"same": 74, "nondeterministic": 2}}

    def test_each_way_a_mutant_is_caught(self):
        d = doc(
            splats=[{"case": "kselftest:hmm.hmm_device_private.anon_write", "splat":
                     "WARNING: possible recursive locking detected", "base": 0, "with": 1, "known": False}],
            verdicts=[{"suite": "dmirror", "case": "hmm.a.b", "before": "pass", "after": "fail"},
                      {"suite": "kselftest", "case": "hmm.a.c", "before": "pass", "after": "crash"}],
            commands={"hmm.a.b": [{"index": 2, "command": "0 HMM_DMIRROR_MIGRATE_TO_DEV unit=0",
                                   "fields": ["errno"], "before": "cpages=1", "after": "errno=ENOENT"}]},
            unload={"base": "ok", "with": "hung"})
        ways = mutants.detection(d, {"traces": {"same": 73, "differs": 1}}, self.STOCK)
        self.assertEqual([w for w, _ in ways], ["splat", "fault or hang", "verdict", "trace", "unload",
                                                "simulator"])
        self.assertEqual(ways[0][1], "kselftest:hmm.hmm_device_private.anon_write: "
                                     "WARNING: possible recursive locking detected (x1)")
        self.assertEqual(ways[3][1], "hmm.a.b #2 `0 HMM_DMIRROR_MIGRATE_TO_DEV unit=0` errno: "
                                     "cpages=1 -> errno=ENOENT")

    def test_known_splats_that_only_change_in_number_are_no_catch(self):
        d = doc(splats=[{"case": "kselftest:hmm.x.y", "splat": "WARNING: mm/memremap.c:158 at memremap_pages",
                         "base": 1, "with": 3, "known": True}])
        self.assertEqual(mutants.detection(d, self.STOCK, self.STOCK), [])

    def test_stock_against_itself_catches_nothing(self):
        real = compare.document(fixture("compare", "madvise"), fixture("compare", "madvise"))
        self.assertEqual(mutants.detection(real, self.STOCK, self.STOCK), [])

    def test_the_report_says_plainly_what_was_not_caught(self):
        rows = [{"name": "b-no-owner-filter", "title": "Mutant (b)", "header": "Mutant (b) ...",
                 "ways": [("verdict", "kselftest:hmm.a.b pass -> fail")], "out": "/o/b"},
                {"name": "c-no-read-retry", "title": "Mutant (c)", "header": "Mutant (c) ...", "ways": [],
                 "out": "/o/c"}]
        text = mutants.markdown(rows)
        self.assertIn("| b-no-owner-filter | Mutant (b) | yes | verdict |", text)
        self.assertIn("| c-no-read-retry | Mutant (c) | **NO** | not caught: a hole in the oracle |", text)
        self.assertIn("NOT CAUGHT: no splat, verdict, trace or unload changed.", text)


if __name__ == "__main__":
    unittest.main()
