import unittest

from dmirror_lab import splats
from tests.support import fixture, read

MEMREMAP = "WARNING: mm/memremap.c:158 at memremap_pages"


class FindSplats(unittest.TestCase):
    def test_cut_here_warnings_are_attributed_to_the_running_case(self):
        found = splats.find_splats(read("kernel-warn.log").splitlines())
        self.assertEqual(
            [s["test"] for s in found],
            [
                "kselftest:hmm.hmm_device_coherent.anon_write_child",
                *["kselftest:hmm.hmm_device_coherent.migrate_partial_unmap_fault"] * 3,
                "dmirror:hmm.hmm_device_coherent.migrate_anon_huge_err",
            ],
        )
        first = found[0]
        # offsets, CPU and task are normalised away; the WARN message is the line after "cut here"
        self.assertEqual(first["title"], MEMREMAP)
        self.assertEqual(first["message"], "Conflicting mapping in same section")
        self.assertTrue(first["text"].startswith("------------[ cut here ]------------\n"))
        self.assertTrue(first["text"].endswith("---[ end trace 0000000000000000 ]---"))
        # "line" is 1-based and names the splat's first line
        lines = read("kernel-warn.log").splitlines()
        self.assertIn("WARNING: mm/memremap.c:158", lines[first["line"] - 1])

    def test_markers_are_not_splats(self):
        found = splats.find_splats(read("kernel-warn.log").splitlines())
        self.assertFalse(any("dmirror-lab" in s["title"] for s in found))

    def test_banner_shapes_and_a_splat_between_cases(self):
        found = splats.find_splats(read("kernel-banners.log").splitlines())
        self.assertEqual(
            [(s["test"], s["title"]) for s in found],
            [
                (
                    "kselftest:hmm.hmm_device_private.migrate",
                    "WARNING: possible circular locking dependency detected",
                ),
                # after the case's END marker: what its exit left behind is still its own
                ("kselftest:hmm.hmm_device_private.migrate", MEMREMAP),
                (
                    "dmirror:hmm.hmm_device_private.anon_read",
                    "BUG: KASAN: slab-out-of-bounds in kmalloc_oob_right [kasan_test]",
                ),
            ],
        )
        lockdep, between, kasan = found
        self.assertEqual([s["after_end"] for s in found], [False, True, False])
        # a banner's text keeps the two lines before it and runs to the next marker
        self.assertIn("======\nWARNING: possible circular locking dependency detected\n", lockdep["text"])
        self.assertTrue(
            lockdep["text"].endswith("dmirror-lab: END kselftest hmm.hmm_device_private.migrate rc=0")
        )
        self.assertIn("*** DEADLOCK ***", lockdep["text"])
        self.assertEqual(lockdep["message"], "")
        self.assertEqual(between["message"], "Conflicting mapping in same section")
        self.assertIn("Memory state around the buggy address:", kasan["text"])

    def test_before_any_marker_is_boot(self):
        lines = [
            "[    1.000000] WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo+0x1/0x2",
            "[    1.000001] Modules linked in:",
            "[    1.000002] dmirror-lab: BEGIN lab insmod",
        ]
        (s,) = splats.find_splats(lines)
        self.assertEqual(s["test"], "boot")
        self.assertEqual(s["title"], "WARNING: at kernel/foo.c:12 foo")

    def test_a_bare_banner_is_not_a_splat(self):
        self.assertEqual(splats.find_splats(["=========", "just a line", "========="]), [])


class Normalise(unittest.TestCase):
    def test_normalise(self):
        self.assertEqual(
            splats.normalise(
                "WARNING: mm/memremap.c:158 at memremap_pages+0x1c8/0x4f0, CPU#1: hmm-tests/481"
            ),
            MEMREMAP,
        )
        self.assertEqual(
            splats.normalise("WARNING: CPU: 1 PID: 481 at mm/x.c:1 f+0x1/0x2"), "WARNING: at mm/x.c:1 f"
        )

    def test_strip_ts(self):
        self.assertEqual(splats.strip_ts("[   25.347181] Conflicting mapping\r\n"), "Conflicting mapping")
        self.assertEqual(splats.strip_ts("no stamp"), "no stamp")


class Known(unittest.TestCase):
    def classify(self, log, tsv):
        known = splats.load_known_splats(tsv)
        return splats.classify_splats(splats.find_splats(read(log).splitlines()), known)

    def test_the_repo_table_knows_the_memremap_warnings(self):
        found = self.classify("kernel-warn.log", fixture("..", "..", "known-splats.tsv"))
        self.assertTrue(found)
        self.assertTrue(all(s["known"] for s in found))

    def test_regex_and_glob_must_both_match(self):
        found = self.classify("kernel-banners.log", fixture("known-splats.tsv"))
        lockdep, between, kasan = found
        # the glob names suite:case, and the lockdep splat is in that case
        self.assertEqual(lockdep["known"], "lockdep in the C suite's migrate only")
        # the memremap regex matches, but the private migrate is not a coherent case
        self.assertIsNone(between["known"])
        # the KASAN regex matches, but only lab:insmod is allowed
        self.assertIsNone(kasan["known"])

    def test_the_repo_s_first_alternative_matches_7_3_s_warn_line_alone(self):
        # the real 7.3.4 line (kernel-warn.log), without its "Conflicting mapping" message,
        # and the format of 6.1 and 6.12 (kernel/panic.c there)
        known = splats.load_known_splats(fixture("..", "..", "known-splats.tsv"))
        seven = splats.normalise(read("kernel-warn.log").splitlines()[30].split("] ", 1)[1])
        self.assertEqual(seven, MEMREMAP)
        six = splats.normalise("WARNING: CPU: 1 PID: 481 at mm/memremap.c:165 memremap_pages+0x1c8/0x4f0")
        for title in (seven, six):
            s = {"title": title, "message": "", "test": "kselftest:hmm.hmm_device_coherent.migrate"}
            splats.classify_splats([s], known)
            self.assertIsNotNone(s["known"], title)
        # and nothing else that happens to be in memremap.c
        s = {"title": "WARNING: mm/memremap.c:200 at pagemap_range", "message": "",
             "test": "kselftest:hmm.hmm_device_coherent.migrate"}
        splats.classify_splats([s], known)
        self.assertIsNone(s["known"])

    def test_a_case_glob_matches_either_suite(self):
        known = splats.load_known_splats(fixture("known-splats.tsv"))
        s = {
            "title": MEMREMAP,
            "message": "Conflicting mapping in same section",
            "test": "dmirror:hmm2.hmm2_device_coherent.snapshot",
        }
        splats.classify_splats([s], known)
        self.assertEqual(s["known"], "coherent devices have one chunk")

    def test_a_row_needs_three_columns(self):
        with self.assertRaises(splats.LabError):
            splats.parse_known_splats("regex\tglob\n")

    def test_no_table_means_nothing_is_known(self):
        self.assertEqual(splats.load_known_splats(fixture("no-such.tsv")), [])


class Faults(unittest.TestCase):
    def test_a_real_oops_is_fatal_and_a_warning_is_not(self):
        found = splats.find_splats(read("boots", "console-fault.log").splitlines())
        oops = [s for s in found if s["fatal"]]
        self.assertEqual([(s["test"], s["title"]) for s in oops], [
            ("kselftest:hmm.hmm_device_coherent.migrate_anon_huge_err",
             "BUG: kernel NULL pointer dereference, address: 0000000000000008")])
        self.assertIn("Oops: Oops: 0000 [#1] SMP", oops[0]["text"])
        self.assertIn("dmirror_migrate_to_device.constprop.0", oops[0]["text"])
        self.assertFalse(any(s["fatal"] for s in found if s["title"].startswith("WARNING")))
        for line in ("kernel BUG at mm/huge_memory.c:3012!", "Oops: general protection fault, probably for x",
                     "invalid opcode: 0000 [#1] SMP", "Kernel panic - not syncing: Fatal exception"):
            self.assertTrue(splats.FATAL.match(line), line)
        self.assertFalse(splats.FATAL.match("BUG: sleeping function called from invalid context"))

    def test_a_boot_line_starts_a_new_boot(self):
        lines = ["dmirror-lab: BEGIN kselftest hmm.a.b", splats.boot_line(2, "fault: x"),
                 "WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo+0x1/0x2"]
        (s,) = splats.find_splats(lines)
        self.assertEqual((s["test"], s["boot"], s["after_end"]), ("boot", 2, False))

    def test_splats_of_cases_run_again_are_marked(self):
        s = {"title": "BUG: x", "message": "", "test": "dmirror:hmm.a.b", "boot": 2}
        splats.classify_splats([s], [], invalid={(2, "dmirror:hmm.a.b")})
        self.assertTrue(s["after_fault"])
        self.assertEqual(splats.splat_cell({"dmirror:hmm.a.b": [s]}, "dmirror", "hmm.a.b"),
                         "BUG: x [after fault] x1")
        self.assertIn("after an earlier kernel fault in this boot", splats.splats_txt([{**s, "text": "t",
                                                                                        "line": 1}]))


class Cells(unittest.TestCase):
    def test_cells_group_and_count(self):
        found = splats.classify_splats(
            splats.find_splats(read("kernel-warn.log").splitlines()),
            splats.load_known_splats(fixture("known-splats.tsv")),
        )
        grouped = splats.by_test(found)
        self.assertEqual(
            splats.splat_cell(grouped, "kselftest", "hmm.hmm_device_coherent.migrate_partial_unmap_fault"),
            MEMREMAP + ": Conflicting mapping in same section [known] x3",
        )
        self.assertEqual(
            splats.splat_cell(grouped, "dmirror", "hmm.hmm_device_coherent.anon_write_child"), "-"
        )
        found[0]["known"] = None
        self.assertTrue(
            splats.splat_cell(
                splats.by_test(found), "kselftest", "hmm.hmm_device_coherent.anon_write_child"
            ).endswith(" [NEW] x1")
        )

    def test_summary_and_splats_txt(self):
        found = splats.classify_splats(
            splats.find_splats(read("kernel-warn.log").splitlines()),
            splats.load_known_splats(fixture("known-splats.tsv")),
        )
        lines = splats.summary_lines(found)
        self.assertEqual(len(lines), 3)
        self.assertTrue(
            lines[1].startswith("  known x3   kselftest:hmm.hmm_device_coherent.migrate_partial_unmap")
        )
        txt = splats.splats_txt(found)
        self.assertEqual(txt.count("### kernel.log line "), 5)
        self.assertIn("known: coherent devices have one chunk", txt)


if __name__ == "__main__":
    unittest.main()
