import numpy as np

from rlhf.evaluation.rm_eval import group_accuracy


def test_group_accuracy_counts_only_gold_untied_pairs_within_a_group_and_skips_score_ties():
    # Prompt a: three samples gold orders 0 > 1 > 2. Prompt b: two samples gold ties (no pair).
    gold = np.array([0.9, 0.5, 0.1, 0.3, 0.3])
    groups = ["a", "a", "a", "b", "b"]
    scores = np.array(
        [
            [3.0, 2.0, 1.0, 9.0, -9.0],  # orders a as gold does; b's order does not count
            [1.0, 2.0, 3.0, 0.0, 0.0],  # reverses a
            [1.0, 1.0, 0.0, 0.0, 0.0],  # ties 0 and 1 (left out), right on the two others
            [1.0, 1.0, 1.0, 5.0, 0.0],  # ties all of a: nothing to count
            [0.5, 0.0, 1.0, 0.0, 0.0],  # right on (0, 1), wrong on (0, 2) and (1, 2)
        ]
    )
    acc, n = group_accuracy(scores, gold, groups)
    assert n == 3
    assert acc[:4] == [1.0, 0.0, 1.0, None]
    assert acc[4] == 1 / 3
