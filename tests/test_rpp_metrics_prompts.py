"""NDCG / HR on hand-made rankings, recommendation cases, and prompt assembly."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from abgym.data.recommendation import RatingsDataset, build_cases, item_popularity, split_users, synthetic_dataset
from abgym.envs import prompt_actions as pa
from abgym.metrics import expected_random_ndcg, hit_at_k, mean_ci, ndcg_at_k, ranking_metrics


def test_ndcg_and_hits_on_hand_made_rankings():
    assert ndcg_at_k([3, 1, 2], 3) == 1.0
    assert ndcg_at_k([1, 3, 2], 3) == pytest.approx(1 / np.log2(3))
    assert ndcg_at_k([1, 2, 3, 0], 3) == pytest.approx(0.5)  # third place: 1 / log2(4)
    assert ndcg_at_k(list(range(12)), 11, k=10) == 0.0  # beyond k
    assert ndcg_at_k([0, 1], 5) == 0.0  # missing (unparsable or partial answer)
    assert hit_at_k([2, 0, 1], 0, 1) == 0.0 and hit_at_k([2, 0, 1], 0, 3) == 1.0
    assert ranking_metrics([4, 5, 6], 5) == {"ndcg@10": pytest.approx(1 / np.log2(3)), "hr@1": 0.0, "hr@3": 1.0}


@given(st.permutations(list(range(10))), st.integers(0, 9))
def test_ndcg_depends_only_on_the_targets_rank(ranking, target):
    rank = ranking.index(target)
    assert ndcg_at_k(ranking, target) == pytest.approx(1 / np.log2(rank + 2))
    assert hit_at_k(ranking, target, 3) == float(rank < 3)


def test_random_ranking_expectation_matches_simulation():
    rng = np.random.default_rng(0)
    simulated = np.mean([ndcg_at_k(rng.permutation(10), 0) for _ in range(20000)])
    assert expected_random_ndcg(10) == pytest.approx(0.4544, abs=1e-4)
    assert simulated == pytest.approx(expected_random_ndcg(10), abs=0.01)


def test_mean_ci():
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and low < 2.0 < high
    mean, low, high = mean_ci([0.5])
    assert mean == 0.5 and np.isnan(low) and np.isnan(high)  # one value: no interval, not a zero-width one


def dataset():
    rows = [("a", f"i{k}", 5.0 if k != 3 else 2.0, float(k)) for k in range(8)]
    rows += [("b", "i0", 4.0, 1.0), ("b", "i1", 4.0, 2.0)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return RatingsDataset("t", "movies", frame, {f"i{k}": f"Title {k}" for k in range(30)})


def test_cases_use_liked_items_in_time_order_and_unseen_negatives():
    (case,) = build_cases(dataset(), min_history=5, n_candidates=10, seed=0)  # b has too few liked items
    assert case.history == ("i0", "i1", "i2", "i4", "i5", "i6") and case.target == "i7"  # i3 rated 2: not liked
    assert case.candidates[case.target_index] == "i7"
    negatives = set(case.candidates) - {"i7"}
    assert len(negatives) == 9 and not negatives & {f"i{k}" for k in range(8)}  # never seen, i3 included


def test_cases_are_seeded_and_positions_shuffled():
    data = synthetic_dataset(n_users=40, n_items=60)
    first, again, other = (build_cases(data, seed=s) for s in (0, 0, 1))
    assert first == again and first != other
    assert len({c.target_index for c in first}) > 3  # the target is not always in the same slot


def test_split_is_disjoint_and_popularity_excludes_targets():
    data = synthetic_dataset(n_users=50)
    cases = build_cases(data)
    parts = split_users(cases, seed=0)
    ids = [c.user_id for part in parts.values() for c in part]
    assert len(ids) == len(set(ids)) == len(cases)
    popularity = item_popularity(data, cases)
    raw = data.interactions["item"].value_counts()
    target = cases[0].target
    assert popularity[target] == raw[target] - sum(c.target == target for c in cases)
    with pytest.raises(ValueError, match="fractions"):
        split_users(cases, fractions=(0.5, 0.6, 0.1))


def test_action_sets_sizes_and_domains():
    assert pa.ACTION_SIZES == (5, 3, 9, 5) and len(pa.all_actions()) == 675
    for domain in pa.DOMAINS:
        texts = [s for actions in pa.all_actions()[::37] for s in pa.sentences(actions, domain)]
        assert all("{" not in t for t in texts)
    assert "song" in pa.sentences((0, 0, 0, 3), "music")[3]


def test_prompt_assembly_cuts_history_and_numbers_candidates():
    history = [f"H{k}" for k in range(30)]
    prompt = pa.build_prompt((1, 0, 2, 2), history, ["Alpha", "Beta"], "movies")
    assert pa.ROLES[1].format(**vars(pa.DOMAINS["movies"])) in prompt
    assert "1. H27\n2. H28" in prompt and "H26" not in prompt  # last 3, oldest first
    assert "Candidate movies:\n1. Alpha\n2. Beta" in prompt
    assert prompt.index("step by step") > prompt.index("Beta")
    assert prompt.endswith("Answer:")
    assert "10. H29" in pa.build_prompt((0, 2, 0, 0), history, ["A"], "games")


@pytest.mark.parametrize("bad", [(0, 0, 0), (5, 0, 0, 0), (0, 3, 0, 0), (0, 0, -1, 0), (0, 0, 0, 1.5)])
def test_bad_actions_are_named(bad):
    with pytest.raises(ValueError, match="pattern|one action per pattern"):
        pa.check_actions(bad)


def test_unknown_domain():
    with pytest.raises(ValueError, match="unknown domain 'books'"):
        pa.sentences((0, 0, 0, 0), "books")


def test_prompt_without_candidate_list_for_likelihood_scoring():
    prompt = pa.build_prompt(pa.HAND_WRITTEN, ["H1", "H2"], ["Alpha", "Beta"], "movies", list_candidates=False)
    assert "Alpha" not in prompt and "Candidate" not in prompt and "1. H1" in prompt and prompt.endswith("Answer:")
