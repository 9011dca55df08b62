import unittest

from dmirror_lab import source
from tests.support import fixture, read


class Deb822(unittest.TestCase):
    def test_candidates(self):
        got = source.deb822_candidates(read("apt", "deb822", "sources.list.d", "debian.sources"))
        # deb-src and Enabled: no are left out; the key block's "URIs:" line is a continuation
        self.assertEqual(
            got,
            [
                ("http://security.mirror.invalid/debian-security", ["bookworm-security"]),
                ("http://deb.mirror.invalid/debian/", ["bookworm", "bookworm-updates"]),
            ],
        )

    def test_the_debian_archive_wins_over_security_and_other_repositories(self):
        self.assertEqual(
            source.debian_mirror(fixture("apt", "deb822"), environ={}), "http://deb.mirror.invalid/debian"
        )


class OneLine(unittest.TestCase):
    def test_candidates(self):
        self.assertEqual(
            source.one_line_candidates(read("apt", "one-line", "sources.list")),
            [
                ("http://security.mirror.invalid/debian-security", ["bookworm-security"]),
                ("http://one.mirror.invalid/debian", ["bookworm"]),
            ],
        )

    def test_sources_list_comes_before_sources_list_d(self):
        self.assertEqual(
            source.debian_mirror(fixture("apt", "one-line"), environ={}), "http://one.mirror.invalid/debian"
        )
        self.assertEqual(
            [u for u, _ in source.apt_candidates(fixture("apt", "one-line"))][-1],
            "http://extra.mirror.invalid/debian",
        )

    def test_without_a_debian_archive_the_first_non_security_uri(self):
        self.assertEqual(
            source.debian_mirror(fixture("apt", "vendor-only"), environ={}), "http://apt.vendor.invalid/repo"
        )


class Choice(unittest.TestCase):
    def test_environment_overrides(self):
        self.assertEqual(
            source.debian_mirror(
                fixture("apt", "deb822"), environ={"DMIRROR_LAB_MIRROR": "http://local.invalid/d"}
            ),
            "http://local.invalid/d",
        )

    def test_nothing_found_is_one_line_error(self):
        with self.assertRaises(source.LabError) as e:
            source.debian_mirror(fixture("apt", "no-such-dir"), environ={})
        self.assertIn("DMIRROR_LAB_MIRROR", str(e.exception))

    def test_only_security(self):
        self.assertIsNone(source.choose_mirror([("http://security.mirror.invalid/debian-security", ["x"])]))


class Private(unittest.TestCase):
    def test_apt_options_point_everything_at_the_private_directory(self):
        opts = source.apt_options("/c/apt")
        self.assertIn("Dir::Etc::SourceList=/dev/null", opts)
        self.assertIn("Dir::Etc::SourceParts=/c/apt", opts)
        self.assertIn("Dir::State::status=/dev/null", opts)


if __name__ == "__main__":
    unittest.main()
