import types
import unittest

from dmirror_lab import cells, qemu, runner
from tests.support import captured, read

GiB = 1024


class SpmLayout(unittest.TestCase):
    def test_default_4_gib(self):
        # pc puts 3 GiB below 4 GiB and 1 GiB from 4 GiB up: the top 512 MiB of that
        self.assertEqual(qemu.spm_layout(4 * GiB), (0x120000000, 0x130000000, "memmap=512M$0x120000000"))

    def test_from_3_5_gib_ram_is_split_at_3_gib(self):
        self.assertEqual(qemu.spm_layout(3584), (0x100000000, 0x110000000, "memmap=512M$0x100000000"))
        self.assertEqual(qemu.spm_layout(8 * GiB), (0x220000000, 0x230000000, "memmap=512M$0x220000000"))

    def test_the_mmci_profile_s_16_gib(self):
        # 13 GiB from 4 GiB up, in the second 8 GiB NUMA node
        self.assertEqual(qemu.spm_layout(16 * GiB), (0x420000000, 0x430000000, "memmap=512M$0x420000000"))

    def test_below_3_5_gib_ram_is_one_range_from_0(self):
        self.assertEqual(qemu.spm_layout(3583), (0xBFF00000, 0xCFF00000, "memmap=512M$0xbff00000"))
        self.assertEqual(qemu.spm_layout(2 * GiB), (0x60000000, 0x70000000, "memmap=512M$0x60000000"))


def run_args(**kw):
    base = dict(mem=None, cpus=None, append=None, panic_on_oops=False, kvm=False, cpu=None)
    return types.SimpleNamespace(**{**base, **kw})


def cmdline_of(cell, **kw):
    settings = runner.guest_settings(run_args(**kw), cells.cell(cell))
    return qemu.qemu_cmd(settings, {"bzImage": "/k/bzImage"}, "/o/initramfs.cpio",
                         ["-serial", "file:/o/console.log"], share="/o/guest/boot-1")


class CommandLine(unittest.TestCase):
    def test_the_default_cell_s_cmdline(self):
        cmd, append = cmdline_of("7.3-madvise")
        self.assertEqual(
            append,
            "console=ttyS0,115200 rdinit=/init panic=-1 printk.devkmsg=on log_buf_len=32M "
            "transparent_hugepage=madvise hugepages=4 memmap=512M$0x120000000 nokaslr",
        )
        self.assertEqual(cmd[:3], ["qemu-system-x86_64", "-M", "pc"])
        self.assertEqual(cmd[cmd.index("-smp") + 1], "2")
        self.assertEqual(cmd[cmd.index("-m") + 1], "4096M")
        self.assertNotIn("-numa", cmd)
        self.assertEqual(cmd[-6:], ["-accel", "tcg", "-cpu", "max", "-serial", "file:/o/console.log"])
        # the results share: a host directory over virtio-9p, as virtme-ng's --rwdir
        self.assertEqual(cmd[cmd.index("-fsdev") + 1],
                         "local,id=labfs,path=/o/guest/boot-1,security_model=none")
        self.assertEqual(cmd[cmd.index("-device") + 1], "virtio-9p-pci,fsdev=labfs,mount_tag=labshare")

    def test_the_cmdline_a_real_guest_reported(self):
        _, append = cmdline_of("7.3-madvise")
        recorded = [x for x in read("boots", "madvise", "boot-1", "results", "env.txt").splitlines()
                    if x.startswith("cmdline: ")][0]
        self.assertEqual("cmdline: " + append, recorded)

    def test_thp_cells(self):
        self.assertIn("transparent_hugepage=always", cmdline_of("7.3-always")[1])
        self.assertIn("transparent_hugepage=never", cmdline_of("7.3-never")[1])

    def test_built_in_test_hmm_takes_its_spm_addresses_on_the_cmdline(self):
        _, append = cmdline_of("7.3-builtin")
        self.assertIn("memmap=512M$0x120000000", append)
        self.assertTrue(append.endswith(
            "test_hmm.spm_addr_dev0=0x120000000 test_hmm.spm_addr_dev1=0x130000000"))
        self.assertNotIn("test_hmm.spm", cmdline_of("7.3-madvise")[1])

    def test_the_mmci_profile(self):
        cmd, append = cmdline_of("7.3-mmci")
        # THP comes from TRANSPARENT_HUGEPAGE_ALWAYS, as in mm-ci, not from the cmdline
        self.assertNotIn("transparent_hugepage=", append)
        self.assertIn("oops=panic", append.split())
        self.assertIn("loglevel=8", append.split())
        self.assertIn("memmap=512M$0x420000000", append)
        self.assertIn("test_hmm.spm_addr_dev0=0x420000000", append)
        # a socket per node: no LLC spans two nodes (the kernel warns at boot otherwise)
        self.assertEqual(cmd[cmd.index("-smp") + 1], "4,sockets=2,cores=2,threads=1")
        self.assertEqual(cmd[cmd.index("-m") + 1], "16384M")
        i = cmd.index("-numa")
        self.assertEqual(cmd[i - 2:i + 6], [
            "-object", "memory-backend-ram,id=mem0,size=8192M",
            "-numa", "node,nodeid=0,cpus=0-1,memdev=mem0",
            "-object", "memory-backend-ram,id=mem1,size=8192M",
            "-numa", "node,nodeid=1,cpus=2-3,memdev=mem1"])

    def test_overrides(self):
        cmd, append = cmdline_of("7.3-madvise", kvm=True, panic_on_oops=True, append=["a=1", "b"], mem=8192,
                                 cpus=3)
        self.assertTrue(append.endswith("nokaslr oops=panic a=1 b"))
        self.assertIn("memmap=512M$0x220000000", append)
        self.assertEqual(cmd[-4:-2], ["-cpu", "host"])
        self.assertEqual(cmd[cmd.index("-smp") + 1], "3")

    def test_numa_cpus_split(self):
        self.assertEqual(qemu.numa_args((), 4), [])
        self.assertEqual(qemu.numa_args((1024, 1024, 1024), 2)[3], "node,nodeid=0,cpus=0-0,memdev=mem0")
        self.assertEqual(qemu.numa_args((1024, 1024, 1024), 2)[11], "node,nodeid=2,cpus=1-1,memdev=mem2")


class Console(unittest.TestCase):
    def watch(self, name, hang_after=120):
        w = qemu.ConsoleWatcher("/nonexistent", 0, {}, hang_after)
        with captured() as out:
            for i, line in enumerate(read("boots", name).splitlines()):
                w.line(line, now=float(i))
        return w, out

    def test_progress_lines_and_events_of_a_real_boot(self):
        w, out = self.watch("console-madvise.log")
        self.assertEqual(out[0], "  guest: booted, init running after 0s")
        self.assertIn("  guest: spm: 0x120000000 and 0x130000000 are reserved RAM (256 MiB each)", out)
        self.assertIn("  guest: kselftest: running 76 cases", out)
        self.assertTrue(any(x.startswith("  kselftest   1/76") and "open_close  rc=0" in x for x in out))
        self.assertTrue(any(x.startswith("  dmirror     1/76") and "open_close  rc=0" in x for x in out))
        self.assertFalse(any("BEGIN" in x for x in out))
        self.assertEqual(set(w.events), {"init", "kselftest-start", "kselftest-end", "dmirror-start",
                                         "dmirror-end", "done"})
        self.assertIsNone(w.fault)
        self.assertIsNone(w.verdict(now=w.events["done"] + 10))
        self.assertEqual(w.verdict(now=w.events["done"] + 60), "done")

    def test_a_real_oops_names_its_case_and_the_cases_after_it(self):
        w, out = self.watch("console-fault.log")
        self.assertEqual(w.fault["case"], ("kselftest", "hmm.hmm_device_coherent.migrate_anon_huge_err"))
        self.assertEqual(w.fault["line"], "BUG: kernel NULL pointer dereference, address: 0000000000000008")
        self.assertIn("  guest: kernel fault in kselftest hmm.hmm_device_coherent.migrate_anon_huge_err: "
                      "BUG: kernel NULL pointer dereference, address: 0000000000000008", out)
        # the case ended (END after the fault): the boot ends now
        self.assertEqual(w.verdict(now=w.fault["at"] + 1), "fault")
        self.assertEqual(w.after_fault[0],
                         ("kselftest", "hmm.hmm_device_coherent.migrate_anon_huge_zero_err"))

    def test_a_fault_waits_20_s_for_its_case_to_end(self):
        w = qemu.ConsoleWatcher("/nonexistent", 0, {})
        with captured():
            w.line("[ 1.0] dmirror-lab: BEGIN dmirror hmm.x.y", now=1)
            w.line("[ 2.0] Oops: general protection fault, probably for non-canonical address", now=2)
        self.assertEqual(w.fault["case"], ("dmirror", "hmm.x.y"))
        self.assertIsNone(w.verdict(now=10))
        self.assertEqual(w.verdict(now=22), "fault")

    def test_a_fault_between_cases_belongs_to_the_one_that_ended(self):
        w = qemu.ConsoleWatcher("/nonexistent", 0, {})
        with captured():
            w.line("dmirror-lab: BEGIN dmirror hmm.a.b", now=1)
            w.line("dmirror-lab: END dmirror hmm.a.b rc=0", now=2)
            w.line("kernel BUG at mm/memory.c:123!", now=3)
        self.assertEqual(w.fault["case"], ("dmirror", "hmm.a.b"))

    def test_hang(self):
        w = qemu.ConsoleWatcher("/nonexistent", 0, {}, hang_after=120)
        with captured():
            w.line("dmirror-lab: BEGIN kselftest hmm.hmm_device_private.migrate_release", now=10)
        self.assertIsNone(w.verdict(now=129))
        self.assertEqual(w.verdict(now=130), "hang")
        # the benchmark's own harness limit is 120 s, so it gets 90 s more
        self.assertEqual(w.limit("hmm.hmm_device_private.benchmark_thp_migration"), 210)

    def test_the_guest_stopping_itself(self):
        w = qemu.ConsoleWatcher("/nonexistent", 0, {})
        with captured() as out:
            w.line("[ 9.0] dmirror-lab: STOP lockdep-off (it reported during the C suite)", now=9)
            w.line("[ 1.0] dmirror-lab: FATAL the results share (virtio-9p) did not mount", now=1)
        self.assertEqual(w.stopped, "lockdep-off (it reported during the C suite)")
        self.assertEqual(w.fatal, "the results share (virtio-9p) did not mount")
        self.assertIn("  guest: stops this boot: lockdep-off (it reported during the C suite)", out)


if __name__ == "__main__":
    unittest.main()
