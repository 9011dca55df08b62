import os
import tempfile
import unittest

from dmirror_lab import build, cells, kconfig
from tests.support import fixture

LAB = fixture("lab-kernel.config")
MMCI = fixture("lab-mmci.config")


def cell_options(name, version, kasan=False):
    """kconfig.cell_options of a cell, read from the fixtures (copies of the repo's fragments)."""
    c = cells.cell(name)
    lists = [kconfig.fragment_lines(kasan, LAB, version)]
    if c.profile.fragment:
        lists.append(kconfig.fragment_lines(kasan, MMCI, version))
    return kconfig.merged(*lists, [("TEST_HMM", c.test_hmm)])


class Fragment(unittest.TestCase):
    def test_lines_and_kasan(self):
        plain = kconfig.fragment_lines(False, LAB)
        kasan = kconfig.fragment_lines(True, LAB)
        self.assertIn(("TEST_HMM", "m"), plain)
        self.assertIn(("NR_CPUS", "8"), plain)
        self.assertNotIn(("KASAN", "y"), plain)
        self.assertEqual(kasan[len(plain):], [("KASAN", "y"), ("KASAN_GENERIC", "y")])

    def test_the_results_share_and_hung_tasks(self):
        opts = dict(kconfig.fragment_lines(False, LAB))
        for name in ("NET", "NET_9P", "NET_9P_VIRTIO", "9P_FS", "VIRTIO_PCI", "DETECT_HUNG_TASK"):
            self.assertEqual(opts[name], "y", name)
        self.assertEqual(opts["NET_9P_FD"], "n")

    def test_version_conditions(self):
        v61 = dict(kconfig.fragment_lines(False, LAB, (6, 1)))
        v612 = dict(kconfig.fragment_lines(False, LAB, (6, 12)))
        v73 = dict(kconfig.fragment_lines(False, LAB, (7, 3)))
        # tinyconfig's SLOB went in 6.4, SLUB_TINY came in 6.2; 6.1's 9P_FS needs INET
        self.assertEqual((v61.get("SLOB"), v61.get("SLUB_TINY"), v61.get("INET")), ("n", None, "y"))
        self.assertEqual((v612.get("SLOB"), v612.get("SLUB_TINY"), v612.get("INET")), (None, "n", None))
        self.assertEqual((v73.get("SLOB"), v73.get("SLUB_TINY")), (None, "n"))

    def test_conditions_are_checked(self):
        with tempfile.NamedTemporaryFile("w", suffix=".config") as f:
            f.write("# a comment with # lab: anything\n"
                    "CONFIG_A=y # lab: >=6.2, kasan\nCONFIG_B=y # lab: <6.2\n")
            f.flush()
            self.assertEqual(kconfig.fragment_lines(False, f.name, (7, 3)), [])
            self.assertEqual(kconfig.fragment_lines(True, f.name, (7, 3)), [("A", "y")])
            self.assertEqual(kconfig.fragment_lines(True, f.name, (6, 1)), [("B", "y")])
        with tempfile.NamedTemporaryFile("w", suffix=".config") as f:
            f.write("CONFIG_A=y # lab: sometimes\n")
            f.flush()
            with self.assertRaises(kconfig.LabError) as e:
                kconfig.fragment_lines(False, f.name)
            self.assertIn("unknown condition 'sometimes'", str(e.exception))

    def test_a_bad_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".config") as f:
            f.write("CONFIG_FOO=y\nCONFIG_BAR is not set\n")
            f.flush()
            with self.assertRaises(kconfig.LabError) as e:
                kconfig.fragment_lines(False, f.name)
        self.assertIn("'CONFIG_BAR is not set'", str(e.exception))

    def test_scripts_config_arguments(self):
        self.assertEqual(
            kconfig.config_args([("A", "y"), ("B", "n"), ("C", "m"), ("D", '"x y"'), ("E", "8")]),
            ["-e", "A", "-d", "B", "-m", "C", "--set-str", "D", "x y", "--set-val", "E", "8"],
        )

    def test_every_option_must_stick(self):
        have = kconfig.parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n")
        self.assertEqual(have, {"A": "y", "C": "m"})
        self.assertIsNone(kconfig.unstuck([("A", "y"), ("B", "n"), ("C", "m")], have))
        self.assertEqual(kconfig.unstuck([("A", "y"), ("C", "y")], have), ("C", "y", "m"))
        self.assertEqual(kconfig.unstuck([("D", "y")], have), ("D", "y", "n"))


class CellOptions(unittest.TestCase):
    def test_merging_keeps_the_first_place_and_the_last_value(self):
        self.assertEqual(kconfig.merged([("A", "y"), ("B", "m")], [("B", "y"), ("C", "n")]),
                         [("A", "y"), ("B", "y"), ("C", "n")])

    def test_test_hmm_as_the_cell_says(self):
        self.assertIn(("TEST_HMM", "m"), cell_options("7.3-madvise", (7, 3)))
        self.assertIn(("TEST_HMM", "y"), cell_options("7.3-builtin", (7, 3)))

    def test_the_mmci_profile_is_mm_ci_s_fragment_on_top(self):
        opts = dict(cell_options("7.3-mmci", (7, 3)))
        for name in ("TEST_HMM", "DEVICE_PRIVATE", "DEBUG_VM", "DEBUG_VM_PGTABLE",
                     "TRANSPARENT_HUGEPAGE_ALWAYS", "NUMA", "NUMA_BALANCING", "MEMCG", "KSM",
                     "MEMORY_FAILURE", "GUP_TEST", "USERFAULTFD"):
            self.assertEqual(opts[name], "y", name)
        self.assertEqual(opts["TRANSPARENT_HUGEPAGE_MADVISE"], "n")
        # the lab's own options stay: lockdep, the 9p share
        self.assertEqual((opts["PROVE_LOCKING"], opts["9P_FS"]), ("y", "y"))

    def test_the_repo_fragments_are_the_fixtures(self):
        # fails when a fragment changes: then refresh the fixture and the keys below
        for name in ("lab-kernel.config", "lab-mmci.config"):
            with open(fixture(name)) as a, open(os.path.join(fixture("..", ".."), name)) as b:
                self.assertEqual(a.read(), b.read(), name)


class CacheKey(unittest.TestCase):
    def test_keys_of_the_builds_in_the_cache(self):
        # the keys of the cached builds: a change to how the key is made rebuilds every kernel
        self.assertEqual(build.build_key("7.3.4-1~bpo13+1", cell_options("7.3-madvise", (7, 3))),
                         "7.3.4-1_bpo13+1-1da9e4689285")

    def test_kasan_and_builtin_are_other_builds(self):
        keys = {build.build_key("7.3.4-1~bpo13+1", cell_options(n, (7, 3), k))
                for n, k in (("7.3-madvise", False), ("7.3-madvise", True), ("7.3-builtin", False),
                             ("7.3-mmci", False))}
        self.assertEqual(len(keys), 4)
        # THP cells share one kernel: the mode is on the cmdline
        self.assertEqual(cell_options("7.3-always", (7, 3)), cell_options("7.3-never", (7, 3)))


class Progress(unittest.TestCase):
    def test_steps_of_a_build_log(self):
        with tempfile.NamedTemporaryFile("wb") as log:
            log.write(
                b"  SYNC    include/config/auto.conf\n  CC      kernel/fork.o\nwarning: x\n"
                b"  CC [M]  lib/test_hmm.o\n  LD [M]  lib/test_hmm.ko\n"
            )
            log.flush()
            steps, last = build.count_steps(log.name)
        self.assertEqual((steps, last), (4, "lib/test_hmm.ko"))
        self.assertEqual(
            build.progress_line("kernel", 90, 870, 1740, last),
            "  [kernel] 1m30s: 870 steps (~50%), now lib/test_hmm.ko",
        )
        self.assertEqual(
            build.progress_line("kernel", 5, 3000, 1740, "x"), "  [kernel] 5s: 3000 steps (~99%), now x"
        )
        self.assertEqual(build.progress_line("k", 5, 3, None, "x"), "  [k] 5s: 3 steps, now x")


class HmmTests(unittest.TestCase):
    def tree(self, sub, files):
        d = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, d)
        mm = os.path.join(d, "tools", "testing", "selftests", sub)
        os.makedirs(mm)
        for name, text in files.items():
            with open(os.path.join(mm, name), "w") as f:
                f.write(text)
        return d, mm

    def test_the_helpers_7_3_links_and_6_x_does_not(self):
        # 7.3's hmm-tests.c includes hugepage_settings.h, whose .c includes vm_util.h
        d, mm = self.tree("mm", {
            "hmm-tests.c": '#include "kselftest_harness.h"\n#include "hugepage_settings.h"\n',
            "hugepage_settings.c": '#include "vm_util.h"\n#include "hugepage_settings.h"\n',
            "vm_util.c": '#include "kselftest.h"\n#include "vm_util.h"\n',
            "thp_settings.c": "",
        })
        self.assertEqual(build.selftests_dir(d), mm)
        self.assertEqual([os.path.basename(p) for p in build.hmm_tests_sources(mm)],
                         ["hmm-tests.c", "hugepage_settings.c", "vm_util.c"])
        old, vm = self.tree("vm", {"hmm-tests.c": '#include "../kselftest_harness.h"\n', "vm_util.c": ""})
        self.assertEqual(build.selftests_dir(old), vm)       # before 6.3: selftests/vm
        self.assertEqual([os.path.basename(p) for p in build.hmm_tests_sources(vm)], ["hmm-tests.c"])

    def test_no_hmm_tests_is_one_line_error(self):
        with self.assertRaises(build.LabError) as e:
            build.selftests_dir("/nonexistent")
        self.assertIn("has no tools/testing/selftests/{mm,vm}/hmm-tests.c", str(e.exception))

    def test_hmm_tests_is_static_from_the_tree(self):
        cmd = build.hmm_tests_command("/t", "/o/usr", "/b/hmm-tests", "/t/tools/testing/selftests/vm",
                                      ["/t/tools/testing/selftests/vm/hmm-tests.c"])
        self.assertEqual(cmd[:2], ["gcc", "-static"])
        self.assertIn("/t/tools/testing/selftests/vm/hmm-tests.c", cmd)
        self.assertEqual(cmd[cmd.index("-o") + 1], "/b/hmm-tests")


if __name__ == "__main__":
    unittest.main()
