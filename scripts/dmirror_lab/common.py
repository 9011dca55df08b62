"""What every part of the lab shares: its paths, the one-line error, console lines."""

import hashlib
import os
import re
import subprocess

SCRIPTS = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
REPO = os.path.dirname(SCRIPTS)
CACHE = os.environ.get("DMIRROR_LAB_CACHE", os.path.expanduser("~/.cache/dmirror-lab"))
KERNEL_FRAGMENT = os.path.join(SCRIPTS, "lab-kernel.config")
GUEST_INIT = os.path.join(SCRIPTS, "lab-guest-init.sh")
KNOWN_SPLATS = os.path.join(SCRIPTS, "known-splats.tsv")
BENCH = "benchmark_thp_migration"


class LabError(Exception):
    """One line that says what is wrong and what to do."""


def say(msg=""):
    print(msg, flush=True)


def fmt_secs(s):
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def path_safe(text):
    """text with everything but [A-Za-z0-9.+_-] replaced, for a cache directory name."""
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", text)


def read_text(path, default=None):
    """The file's text (undecodable bytes replaced); `default` when it does not exist
    and a default is given."""
    if default is not None and not os.path.exists(path):
        return default
    with open(path, errors="replace") as f:
        return f.read()
