"""Problem groups: dense ids in order of first appearance, the same whether
formed from a dataset's integer column or from the records' problem ids."""

import numpy as np

from o1pruner.data.records import group_ids, problem_key


def test_group_ids_of_an_int_column_number_groups_by_first_appearance():
    g = group_ids(np.array([7, 3, 7, 9, 3, 3], dtype=np.int64))
    assert g.dtype == np.int64
    assert g.tolist() == [0, 1, 0, 2, 1, 1]
    assert group_ids(np.zeros(0, dtype=np.int64)).tolist() == []


def test_group_ids_of_problem_ids_match_the_int_column():
    pids = ["b", 2, "b", [1, "x"], 2, [1, "x"], {"k": [1]}, {"k": [1]}]
    g = group_ids(pids)
    assert g.tolist() == [0, 1, 0, 2, 1, 2, 3, 3]
    rows = {problem_key(p): i for i, p in enumerate(reversed(pids))}  # another numbering of the same groups
    col = np.array([rows[problem_key(p)] for p in pids], dtype=np.int64)
    assert np.array_equal(group_ids(col), g)
