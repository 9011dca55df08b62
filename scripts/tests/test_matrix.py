import json
import unittest

from dmirror_lab import matrix
from tests.support import read


def summary(name):
    return json.loads(read("compare", name, "summary.json"))


class Table(unittest.TestCase):
    def test_rows_of_two_real_cells(self):
        rows = [matrix.row(summary("madvise"), 0), matrix.row(summary("always"), 1)]
        self.assertEqual(rows[0], ("7.3-madvise", "7.3.4", "75/1/0/0", "75/1/0/0", "0", "74/0 (2 nondet)",
                                   "0/34", "ok", "65.332", "45.165", "0.691", "1", "OK"))
        self.assertEqual(rows[1][:8], ("7.3-always", "7.3.4", "70/5/0/1", "70/5/0/1", "0",
                                       "68/5 (5 in findings) (2 nondet)", "2/2086", "ok"))
        self.assertEqual(rows[1][-2:], ("3", "FAIL"))
        lines = matrix.table(rows)
        self.assertEqual(lines[0], "| " + " | ".join(matrix.COLUMNS) + " |")
        self.assertEqual(lines[1], "|" + "---|" * len(matrix.COLUMNS))
        self.assertTrue(lines[2].startswith("| 7.3-madvise | 7.3.4 | 75/1/0/0 |"))

    def test_the_ratio_compares_the_same_cases(self):
        self.assertEqual(matrix.ratio_text({"ratio": 0.691, "same_cases": True}), "0.691")
        # 6.12's C suite has 58 cases, dmirror 76: the walls do not compare, the common cases do
        self.assertEqual(matrix.ratio_text({"ratio": 2.858, "same_cases": False, "ratio_common": 2.106,
                                            "common_cases": 58}), "2.106 (58 cases)")

    def test_a_cell_the_lab_could_not_run(self):
        r = matrix.row({"cell": "6.1-madvise", "problems": ["apt could not download linux-source-6.1"]}, 2)
        self.assertEqual(r, ("6.1-madvise", "?", "-", "-", "0", "-", "0/0", "?", "-", "-", "-", "?", "FAIL"))


if __name__ == "__main__":
    unittest.main()
