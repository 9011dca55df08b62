import types
import unittest

from dmirror_lab import qemu
from tests.support import captured, read

GiB = 1024


class SpmLayout(unittest.TestCase):
    def test_default_4_gib(self):
        # pc puts 3 GiB below 4 GiB and 1 GiB from 4 GiB up: the top 512 MiB of that
        self.assertEqual(qemu.spm_layout(4 * GiB), (0x120000000, 0x130000000, "memmap=512M$0x120000000"))

    def test_from_3_5_gib_ram_is_split_at_3_gib(self):
        self.assertEqual(qemu.spm_layout(3584), (0x100000000, 0x110000000, "memmap=512M$0x100000000"))
        self.assertEqual(qemu.spm_layout(8 * GiB), (0x220000000, 0x230000000, "memmap=512M$0x220000000"))

    def test_below_3_5_gib_ram_is_one_range_from_0(self):
        self.assertEqual(qemu.spm_layout(3583), (0xBFF00000, 0xCFF00000, "memmap=512M$0xbff00000"))
        self.assertEqual(qemu.spm_layout(2 * GiB), (0x60000000, 0x70000000, "memmap=512M$0x60000000"))


def guest_args(**kw):
    base = dict(mem=4096, thp="madvise", panic_on_oops=False, append=None, kvm=False, cpu=None, cpus=2)
    return types.SimpleNamespace(**{**base, **kw})


class CommandLine(unittest.TestCase):
    def test_the_recorded_cmdline(self):
        cmd, spm0, spm1, append = qemu.qemu_cmd(
            guest_args(), {"bzImage": "/k/bzImage"}, "/o/initramfs.cpio", ["-serial", "file:/o/console.log"]
        )
        # the cmdline the guest reported in a real run (env.txt)
        recorded = [x for x in read("results", "env.txt").splitlines() if x.startswith("cmdline: ")][0]
        self.assertEqual("cmdline: " + append, recorded)
        self.assertEqual((spm0, spm1), (0x120000000, 0x130000000))
        self.assertEqual(cmd[:3], ["qemu-system-x86_64", "-M", "pc"])
        self.assertEqual(cmd[cmd.index("-append") + 1], append)
        self.assertEqual(cmd[-6:], ["-accel", "tcg", "-cpu", "max", "-serial", "file:/o/console.log"])
        self.assertEqual(cmd[cmd.index("-m") + 1], "4096M")

    def test_options(self):
        cmd, _, _, append = qemu.qemu_cmd(
            guest_args(kvm=True, thp="always", panic_on_oops=True, append=["a=1", "b"]),
            {"bzImage": "k"},
            "i",
            [],
        )
        self.assertTrue(append.endswith("nokaslr oops=panic a=1 b"))
        self.assertIn("transparent_hugepage=always", append)
        self.assertEqual(cmd[-4:], ["-accel", "kvm", "-cpu", "host"])


class Console(unittest.TestCase):
    def test_progress_lines_and_events(self):
        w = qemu.ConsoleWatcher("/nonexistent", 0, {})
        with captured() as out:
            for i, line in enumerate(read("console.log").splitlines()):
                w.line(line, now=float(i))
        self.assertEqual(out[0], "  guest: booted, init running after 0s")
        self.assertIn("  guest: spm: 0x120000000 and 0x130000000 are reserved RAM (256 MiB each)", out)
        self.assertIn("  guest: insmod rc=0", out)
        self.assertIn("  guest: kselftest: running 76 cases one by one", out)
        self.assertIn("  kselftest   1/76     8s  hmm.hmm_device_private.open_close  rc=0", out)
        self.assertIn("  dmirror     1/76    16s  hmm.hmm_device_private.open_close  rc=0", out)
        self.assertIn("  guest: rmmod rc=0", out)
        self.assertFalse(any("BEGIN" in x for x in out))
        self.assertEqual(
            w.events,
            {
                "init": 0.0,
                "kselftest-start": 6.0,
                "kselftest-end": 12.0,
                "dmirror-start": 14.0,
                "dmirror-end": 18.0,
                "done": 21.0,
            },
        )


if __name__ == "__main__":
    unittest.main()
