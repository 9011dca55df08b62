import os
import tempfile
import unittest

from dmirror_lab import build, kconfig
from tests.support import fixture


class Fragment(unittest.TestCase):
    def test_lines_and_kasan(self):
        plain = kconfig.fragment_lines(False, fixture("lab-kernel.config"))
        kasan = kconfig.fragment_lines(True, fixture("lab-kernel.config"))
        self.assertIn(("TEST_HMM", "m"), plain)
        self.assertIn(("NR_CPUS", "8"), plain)
        self.assertNotIn(("KASAN", "y"), plain)
        self.assertEqual(kasan[len(plain) :], [("KASAN", "y"), ("KASAN_GENERIC", "y")])

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


class CacheKey(unittest.TestCase):
    def test_keys_of_the_builds_in_the_cache(self):
        # the keys the lab gave the cached 7.3.4 builds before the refactor: a change to
        # how the key is made would rebuild every kernel
        frag = fixture("lab-kernel.config")
        self.assertEqual(
            build.build_key("7.3.4-1~bpo13+1", False, fragment=frag), "7.3.4-1_bpo13+1-c405d7f3061e"
        )
        self.assertEqual(
            build.build_key("7.3.4-1~bpo13+1", True, fragment=frag), "7.3.4-1_bpo13+1-6cbebf52ac5b"
        )

    def test_the_repo_fragment_is_the_fixture_s(self):
        # fails when scripts/lab-kernel.config changes: then refresh the fixture and the keys above
        with (
            open(fixture("lab-kernel.config")) as a,
            open(os.path.join(fixture("..", ".."), "lab-kernel.config")) as b,
        ):
            self.assertEqual(a.read(), b.read())


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

    def test_hmm_tests_is_static_from_the_tree(self):
        cmd = build.hmm_tests_command("/t", "/o/usr", "/b/hmm-tests")
        self.assertEqual(cmd[:2], ["gcc", "-static"])
        self.assertIn("/t/tools/testing/selftests/mm/hmm-tests.c", cmd)
        self.assertEqual(cmd[cmd.index("-o") + 1], "/b/hmm-tests")


if __name__ == "__main__":
    unittest.main()
