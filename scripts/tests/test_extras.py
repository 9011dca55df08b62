import os
import shutil
import subprocess
import tempfile
import types
import unittest

from dmirror_lab import extras, initramfs
from dmirror_lab.common import LabError
from tests.test_initramfs import read_newc


def args(**kw):
    return types.SimpleNamespace(**{**dict(extras=False, stress=None, explore=None, guest_script=None,
                                            guest_file=None), **kw})


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class GuestFiles(unittest.TestCase):
    def test_nothing_without_an_option(self):
        self.assertEqual(extras.guest_files(args(), {}, "/nonexistent"), [])

    def test_a_guest_script_and_files(self):
        with tempfile.TemporaryDirectory() as d:
            script = write(os.path.join(d, "m.sh"), "#!/bin/sh\n")
            tool = write(os.path.join(d, "bin", "strace"), "")
            self.assertEqual(extras.guest_files(args(guest_script=script, guest_file=[tool]), {}, d),
                             [("extra.sh", os.path.realpath(script)), ("strace", os.path.realpath(tool))])
            with self.assertRaisesRegex(LabError, "--guest-script .*: no such file"):
                extras.guest_files(args(guest_script=os.path.join(d, "none")), {}, d)
            with self.assertRaisesRegex(LabError, "--guest-file .*: no such file"):
                extras.guest_files(args(guest_file=[os.path.join(d, "none")]), {}, d)

    def test_extras_and_a_guest_script_exclude_each_other(self):
        with self.assertRaisesRegex(LabError, "pass one"):
            extras.guest_files(args(extras=True, guest_script="x"), {}, "/nonexistent")

    def test_a_tree_without_test_hmm_is_refused(self):
        with tempfile.TemporaryDirectory() as d, self.assertRaisesRegex(LabError, "has no test_hmm"):
            extras.guest_files(args(extras=True), {"tree": d}, d)

    @unittest.skipUnless(shutil.which("gcc") and subprocess.run(
        ["gcc", "-static", "-x", "c", "-o", os.devnull, "-"], input=b"int main(void){return 0;}",
        capture_output=True, check=False).returncode == 0, "no static gcc")
    def test_extras_build_the_c_loop_and_carry_the_kernel_config(self):
        header = ("#include <linux/types.h>\n#include <linux/ioctl.h>\n"
                  "struct hmm_dmirror_cmd { __u64 addr; __u64 ptr; __u64 npages; __u64 cpages; "
                  "__u64 faults; };\n"
                  + "".join(f"#define HMM_DMIRROR_{n} _IOWR('H', {i}, struct hmm_dmirror_cmd)\n"
                            for i, n in enumerate(["READ", "WRITE", "MIGRATE_TO_DEV", "MIGRATE_TO_SYS",
                                                   "SNAPSHOT", "EXCLUSIVE", "CHECK_EXCLUSIVE", "RELEASE"])))
        with tempfile.TemporaryDirectory() as d:
            write(os.path.join(d, "tree", "lib", "test_hmm_uapi.h"), header)
            config = write(os.path.join(d, "config"), "CONFIG_TEST_HMM=m\n")
            out = os.path.join(d, "out")
            os.makedirs(out)
            files = dict(extras.guest_files(args(extras=True),
                                            {"tree": os.path.join(d, "tree"), "config": config,
                                             "release": "7.3.4"}, out))
            self.assertEqual(sorted(files), ["/boot/config-7.3.4", "extra.sh", "hmm-bench"])
            self.assertTrue(os.access(files["hmm-bench"], os.X_OK))
            with open(files["extra.sh"]) as f:
                script = f.read()
            self.assertIn("bench --backend kernel --iterations 200 --repeats 5 --compare hmm-bench.txt",
                          script)
            self.assertIn("/lab/hmm-bench 200 5 > hmm-bench.txt", script)
            self.assertIn("doctor > doctor.txt", script)
            self.assertIn("--count-walks --trace walks -r hmm.hmm_device_private.migrate ", script)
            # the config lands at its absolute path, the rest under /lab
            ht = write(os.path.join(d, "hmm-tests"), "")
            image = os.path.join(d, "initramfs.cpio")
            initramfs.make_initramfs(image, {"test_hmm": None, "hmm_tests": ht}, None, "LAB_MODE=run\n",
                                     sorted(files.items()))
            with open(image, "rb") as f:
                names = [e[0] for e in read_newc(f.read())[0]]
            self.assertIn("boot/config-7.3.4", names)
            self.assertIn("lab/extra.sh", names)
            self.assertIn("lab/hmm-bench", names)


class Walks(unittest.TestCase):
    def test_walks_of_kernel_and_simulator_command_by_command(self):
        k = ("# dmirror trace\n0 HMM_DMIRROR_MIGRATE_TO_DEV unit=0 npages=256 addr=aligned ok cpages=256 "
             "faults=0 walks=1\n0 HMM_DMIRROR_READ unit=0 npages=256 addr=aligned ok cpages=256 faults=1 "
             "walks=2\n"
             "0 close unit=0 ok\n")
        s = k.replace("walks=2", "walks=1")
        with tempfile.TemporaryDirectory() as d:
            write(os.path.join(d, "k", "a.trace"), k)
            write(os.path.join(d, "s", "a.trace"), s)
            write(os.path.join(d, "k", "b.trace"), k)
            w = extras.compare_walks(os.path.join(d, "k"), os.path.join(d, "s"))
        self.assertEqual((w["a"]["kernel"], w["a"]["sim"], w["a"]["commands"]), (3, 2, 2))
        read = "0 HMM_DMIRROR_READ unit=0 npages=256 addr=aligned ok cpages=256 faults=1"
        self.assertEqual(w["a"]["differ"], [(1, read, 2, 1)])
        self.assertEqual((w["b"]["sim"], w["b"]["sim_commands"]), (0, 0))

    def test_the_c_loop_s_lines(self):
        self.assertEqual(extras.parse_bench("read-1 on 1200\nwrite-1 off 1300.5\n# x\nbad line here\n"),
                         {"read-1 on": 1200.0, "write-1 off": 1300.5})


class Stress(unittest.TestCase):
    def test_a_last_read_with_anything_but_zero_pages_is_stale(self):
        lines = ["C: madvise p0+1024 DONTNEED -> ok",
                 "final: READ p0+32 -> ok cpages=32 faults=0 data=[0,0,0]",
                 "final: READ p32+32 -> ok cpages=32 faults=0 data=[10000+,0,#a1b2c3d4]",
                 "final: READ p64+32 -> EFAULT"]
        self.assertEqual(extras.stale_reads(lines), [lines[2]])
        self.assertEqual(extras.stale_reads(lines[:2]), [])

    def test_the_guest_lines(self):
        self.assertEqual(extras.stress_script(300),
                         "/lab/dmirror explore read-retry-stress --backend kernel --repeat 300 --format json "
                         "--kmsg-markers > stress.json 2> stress.err; echo $? > stress.rc\n")
        text = extras.explore_script(["read-munmap", "oom-reap"], 50)
        self.assertIn("explore read-munmap --backend kernel --repeat 50 --format json --kmsg-markers > "
                      "explore/read-munmap.json", text)
        self.assertIn("explore/oom-reap.rc", text)

    def test_stress_and_extras_share_the_script(self):
        with tempfile.TemporaryDirectory() as d:
            files = extras.guest_files(args(stress=10), {}, d)
            self.assertEqual([n for n, _ in files], ["extra.sh"])
            with open(files[0][1]) as f:
                self.assertIn("--repeat 10", f.read())


class MutantDetection(unittest.TestCase):
    def test_stale_data_only_in_the_mutant_is_a_catch(self):
        from dmirror_lab import mutants
        doc = {"splats": [], "verdicts": [], "commands": {}, "unload": {"base": "ok", "with": "ok"}}
        stock = {"stress": {"stale": 0, "repeats": 1000}}
        mutant = {"stress": {"stale": 2, "repeats": 1000, "example": "final: READ x"}}
        caught = mutants.detection(doc, mutant, stock)
        self.assertEqual([w for w, _ in caught], ["stress"])
        self.assertIn("2 of 1000", caught[0][1])
        self.assertEqual(mutants.detection(doc, {"stress": {"stale": 0, "repeats": 1000}}, stock), [])


if __name__ == "__main__":
    unittest.main()


class BenchVerdicts(unittest.TestCase):
    TABLE = ("dmirror bench: Linux 7.3.4, ABI 7.3, /dev/hmm_dmirror0, 200 calls x 5 repeats\n"
             "    operation               THP  median    min       max       C         ratio\n"
             "    read-1                  off  59499     57492     61688     59598     0.998\n"
             "    migrate-roundtrip-512   on   30188486  23975972  30648221  16056990  1.880\n"
             "    write-1                 off  70000     69000     71000     60000     1.167\n")

    def test_dmirror_against_the_mean_of_the_two_c_runs(self):
        dm = extras.parse_bench(self.TABLE)
        self.assertEqual(dm, {"read-1 off": 59499.0, "migrate-roundtrip-512 on": 30188486.0,
                              "write-1 off": 70000.0})
        before = {"read-1 off": 59598.0, "migrate-roundtrip-512 on": 16056990.0, "write-1 off": 60000.0}
        after = {"read-1 off": 61000.0, "migrate-roundtrip-512 on": 27750000.0, "write-1 off": 61000.0}
        v = {x["operation"]: x for x in extras.bench_verdicts(dm, before, after)}
        self.assertEqual(v["read-1 off"]["verdict"], "✔")
        self.assertAlmostEqual(v["read-1 off"]["ratio"], round(59499 / 60299, 3))
        self.assertTrue(v["migrate-roundtrip-512 on"]["verdict"].startswith("not judged"))
        self.assertEqual(v["write-1 off"]["verdict"], "✘")
