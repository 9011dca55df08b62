import contextlib
import io
import types
import unittest

from dmirror_lab import build, cells, cli, source


def run_main(argv):
    """(exit status, stdout, stderr) of cli.main(argv)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        unittest.TestCase().assertRaises(SystemExit) as e,
    ):
        cli.main(argv)
    return e.exception.code, out.getvalue(), err.getvalue()


class Parser(unittest.TestCase):
    def test_run_defaults(self):
        args = cli.parser().parse_args(["run", "--out", "/o"])
        self.assertEqual(
            (args.func, args.cell, args.mem, args.cpus, args.test_timeout, args.timeout, args.hang_after,
             args.kvm, args.no_trace, args.record_traces),
            (cli.cmd_run, "7.3-madvise", None, None, 300, 75, 120, False, False, False),
        )
        self.assertIsNone(args.dmirror)
        self.assertIsNone(args.mutant)
        # run.json stores these names; `report` reads the run back from them
        self.assertLessEqual({"cell", "kvm", "bench", "only", "upto", "kasan", "source", "no_dmirror"},
                             set(vars(args)))

    def test_matrix_compare_and_mutants(self):
        m = cli.parser().parse_args(["matrix", "--cells", "7.3-madvise,6.1-madvise", "--out", "/o"])
        self.assertEqual((m.func, m.cells, m.mutant), (cli.cmd_matrix, "7.3-madvise,6.1-madvise", None))
        c = cli.parser().parse_args(["compare", "--base", "6.1-madvise", "--with", "7.3-madvise",
                                     "--out", "/o"])
        self.assertEqual((c.base, c.with_cell, c.source), ("6.1-madvise", "7.3-madvise", None))
        u = cli.parser().parse_args(["mutants", "--mutants", "a-recursive-mmap-lock", "--out", "/o"])
        self.assertEqual(u.mutants, "a-recursive-mmap-lock")

    def test_repeatable_append(self):
        args = cli.parser().parse_args(["shell", "--append", "a=1", "--append", "b"])
        self.assertEqual(args.append, ["a=1", "b"])

    def test_usage_errors_exit_2(self):
        code, _, err = run_main(["run"])
        self.assertEqual(code, 2)
        self.assertIn("the following arguments are required: --out", err)
        self.assertEqual(run_main(["compare", "--out", "/o"])[0], 2)


class Cells(unittest.TestCase):
    def test_the_cells_command_lists_every_cell_in_matrix_order(self):
        code, out, _ = run_main(["cells"])
        self.assertEqual(code, 0)
        self.assertEqual([line.split()[0] for line in out.splitlines()], list(cells.MATRIX_ORDER))
        self.assertIn("7.3-mmci       linux-source-7.3 (trixie-backports), profile mmci, THP always, "
                      "TEST_HMM=y, 4 CPUs, 16384 MiB, NUMA 8192+8192, loglevel=8 oops=panic", out)


class OneLineErrors(unittest.TestCase):
    def one_line(self, argv, starts):
        code, _, err = run_main(argv)
        self.assertEqual(code, 2)
        self.assertEqual(err.count("\n"), 1)
        self.assertTrue(err.startswith("lab: error: " + starts), err)

    def test_report_of_a_folder_without_a_run(self):
        self.one_line(["report", "--out", "/nonexistent/lab-out"],
                      "/nonexistent/lab-out/run.json does not exist")

    def test_an_unknown_cell(self):
        self.one_line(["run", "--cell", "7.4-madvise", "--out", "/o"], "no cell named '7.4-madvise'")
        self.one_line(["matrix", "--cells", "7.3-madvise,x", "--out", "/o"], "no cell named 'x'")

    def test_compare_needs_one_other_side(self):
        self.one_line(["compare", "--base", "7.3-madvise", "--out", "/o"],
                      "compare needs exactly one of --with CELL and --source DIR (or --mutant NAME)")
        self.one_line(["compare", "--base", "7.3-madvise", "--with", "6.1-madvise", "--source", "/s",
                       "--out", "/o"], "compare needs exactly one of --with CELL and --source DIR")
        self.one_line(["compare", "--base", "7.3-madvise", "--mutant", "a-recursive-mmap-lock",
                       "--source", "/s", "--out", "/o"],
                      "a mutant is a patch to the stock tree: drop --source, or --mutant")

    def test_an_unknown_mutant(self):
        self.one_line(["mutants", "--mutants", "z-nothing", "--out", "/tmp/lab-mutants-test"],
                      "no mutant z-nothing in scripts/mutants")

    def test_kernel_without_modules(self):
        args = types.SimpleNamespace(
            kernel="/k/bzImage", modules=None, source=None, kasan=False, rebuild=False
        )
        with self.assertRaises(build.LabError) as e:
            build.build(args, cells.cell("7.3-madvise"))
        self.assertEqual(
            str(e.exception), "--kernel and --modules go together (bzImage and a directory with test_hmm.ko)"
        )

    def test_source_that_is_not_a_kernel_tree(self):
        with self.assertRaises(source.LabError) as e:
            source.local_tree("/nonexistent")
        self.assertEqual(
            str(e.exception),
            "/nonexistent is not a kernel tree with lib/test_hmm.c; pass a Linux source directory",
        )


if __name__ == "__main__":
    unittest.main()
