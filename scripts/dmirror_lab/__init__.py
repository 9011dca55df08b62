"""The dmirror lab: build a Linux test kernel with test_hmm, boot it under
QEMU, run the kernel's hmm-tests and `dmirror run --backend kernel` side by
side in one boot, read the kernel log, and report. scripts/lab is the entry;
scripts/LAB.md is the manual."""
