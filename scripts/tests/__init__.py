"""Unit tests of the lab's pure logic, on fixtures recorded from real lab runs
(see fixtures/README.md). Run from the repo root:

    python3 -m unittest discover -s scripts/tests -t scripts
"""
