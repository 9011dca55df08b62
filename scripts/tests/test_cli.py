import contextlib
import io
import types
import unittest

from dmirror_lab import build, cli, source


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
            (args.func, args.mem, args.thp, args.test_timeout, args.timeout, args.kvm),
            (cli.cmd_run, 4096, "madvise", 900, 75, False),
        )
        self.assertIsNone(args.dmirror)
        # run.json stores these names; `report` reads thp and kvm back
        self.assertLessEqual(
            {"thp", "kvm", "bench", "only", "kasan", "source", "no_dmirror"}, set(vars(args))
        )

    def test_repeatable_append(self):
        args = cli.parser().parse_args(["shell", "--append", "a=1", "--append", "b"])
        self.assertEqual(args.append, ["a=1", "b"])

    def test_usage_errors_exit_2(self):
        code, _, err = run_main(["run"])
        self.assertEqual(code, 2)
        self.assertIn("the following arguments are required: --out", err)
        self.assertEqual(run_main(["run", "--out", "/o", "--thp", "sometimes"])[0], 2)


class OneLineErrors(unittest.TestCase):
    def test_report_of_a_folder_without_a_run(self):
        code, _, err = run_main(["report", "--out", "/nonexistent/lab-out"])
        self.assertEqual(code, 2)
        self.assertEqual(err.count("\n"), 1)
        self.assertTrue(err.startswith("lab: error: /nonexistent/lab-out/run.json does not exist"))

    def test_kernel_without_modules(self):
        args = types.SimpleNamespace(
            kernel="/k/bzImage", modules=None, source=None, kasan=False, rebuild=False
        )
        with self.assertRaises(build.LabError) as e:
            build.build(args)
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
