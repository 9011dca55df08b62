"""Where the fixtures are, and reading them."""

import contextlib
import io
import os

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(*parts):
    return os.path.join(FIXTURES, *parts)


def read(*parts):
    with open(fixture(*parts)) as f:
        return f.read()


@contextlib.contextmanager
def captured():
    """What the code under test prints with say(), as a list of lines."""
    buf, lines = io.StringIO(), []
    with contextlib.redirect_stdout(buf):
        yield lines
    lines += buf.getvalue().splitlines()
