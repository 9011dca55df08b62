import unittest

from dmirror_lab import cells


class Table(unittest.TestCase):
    def test_the_stable_names(self):
        self.assertEqual(
            list(cells.MATRIX_ORDER),
            ["7.3-madvise", "7.3-always", "7.3-never", "7.3-builtin", "6.12-madvise", "6.1-madvise",
             "7.3-mmci"],
        )
        self.assertEqual(set(cells.MATRIX_ORDER), set(cells.CELLS))
        self.assertEqual(cells.DEFAULT_CELL, "7.3-madvise")

    def test_kernels_come_from_their_debian_suites(self):
        self.assertEqual(
            {k: (v.package, v.suite) for k, v in cells.KERNELS.items()},
            {
                "7.3": ("linux-source-7.3", "trixie-backports"),
                "6.12": ("linux-source-6.12", "trixie"),
                "6.1": ("linux-source-6.1", "bookworm"),
            },
        )
        for name, c in cells.CELLS.items():
            self.assertTrue(name.startswith(c.kernel.name + "-"), name)

    def test_what_each_cell_is(self):
        got = {n: (c.profile.name, c.thp, c.test_hmm) for n, c in cells.CELLS.items()}
        self.assertEqual(got["7.3-always"], ("lab", "always", "m"))
        self.assertEqual(got["7.3-never"], ("lab", "never", "m"))
        self.assertEqual(got["7.3-builtin"], ("lab", "madvise", "y"))
        self.assertEqual(got["7.3-mmci"], ("mmci", "always", "y"))
        self.assertTrue(all(c.coherent for c in cells.CELLS.values()))

    def test_the_mmci_profile_is_mm_ci_s_vm(self):
        p = cells.PROFILES["mmci"]
        # vng --cpus 4 --memory 16G --numa 8G --numa 8G --append "... panic=-1 oops=panic"
        self.assertEqual((p.cpus, p.mem_mib, p.numa_mib), (4, 16384, (8192, 8192)))
        self.assertIn("oops=panic", p.append)
        self.assertTrue(p.thp_from_config)
        self.assertEqual(p.fragment, "lab-mmci.config")
        lab = cells.PROFILES["lab"]
        self.assertEqual((lab.cpus, lab.mem_mib, lab.numa_mib, lab.fragment), (2, 4096, (), None))

    def test_cell_json(self):
        self.assertEqual(
            cells.cell("7.3-mmci").as_json("7.3.4"),
            {"cell": "7.3-mmci", "release": "7.3.4", "thp": "always", "test_hmm": "y", "profile": "mmci",
             "coherent": True},
        )


class Lookup(unittest.TestCase):
    def test_unknown_cell_names_the_cells(self):
        with self.assertRaises(cells.LabError) as e:
            cells.cell("7.3-sometimes")
        self.assertEqual(str(e.exception).split(";")[0], "no cell named '7.3-sometimes'")
        self.assertIn("7.3-madvise, 7.3-always", str(e.exception))

    def test_cell_list(self):
        got = cells.cell_list(" 6.1-madvise,7.3-madvise,,6.1-madvise ")
        self.assertEqual([c.name for c in got], ["6.1-madvise", "7.3-madvise"])
        with self.assertRaises(cells.LabError):
            cells.cell_list(",")
        with self.assertRaises(cells.LabError):
            cells.cell_list("7.3-madvise,nope")

    def test_versions(self):
        self.assertEqual(cells.version_tuple("7.3.4-1~bpo13+1"), (7, 3))
        self.assertEqual(cells.version_tuple("6.12.117-1"), (6, 12))
        self.assertEqual(cells.version_tuple("6.1.176"), (6, 1))
        self.assertEqual(cells.version_tuple("6.3-rc1"), (6, 3))
        with self.assertRaises(cells.LabError):
            cells.version_tuple("unknown")


if __name__ == "__main__":
    unittest.main()
