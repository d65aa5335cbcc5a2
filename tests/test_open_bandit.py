"""The Open Bandit Dataset loader: the bundled sample (obp==0.4.1, installed by the Makefile) and its errors."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from abgym.data.open_bandit import (BEHAVIOR_POLICIES, CAMPAIGNS, OpenBanditFormatError, bundled_path,
                                    load_bts_prior, load_open_bandit)

N_ITEMS = {"all": 80, "men": 34, "women": 46}


@pytest.mark.parametrize("policy", BEHAVIOR_POLICIES)
@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_every_bundled_log_loads_with_consistent_fields(policy, campaign):
    log = load_open_bandit(policy, campaign)
    n = log.n_rounds
    assert n == 10_000 and log.n_actions == N_ITEMS[campaign] and log.len_list == 3
    assert log.action.min() >= 0 and log.action.max() < log.n_actions
    assert set(np.unique(log.position)) == {0, 1, 2}
    assert set(np.unique(log.reward)) <= {0, 1} and 30 <= log.clicks <= 80
    assert np.all((log.pscore > 0) & (log.pscore <= 1))
    assert log.context.shape[0] == n and np.all(log.context.sum(axis=1) == len(log.user_categories))
    assert log.affinity.shape == (n, log.n_actions) and log.item_features.shape[0] == log.n_actions
    assert np.all(np.diff(log.timestamp.astype("int64")) >= 0), "rows must be in time order"
    if policy == "random":
        np.testing.assert_allclose(log.pscore, 1.0 / log.n_actions)


def test_the_loader_agrees_with_the_raw_file():
    raw = pd.read_csv(bundled_path() / "random" / "men" / "men.csv", index_col=0)
    raw = raw.sort_values("timestamp", kind="stable")
    log = load_open_bandit("random", "men")
    np.testing.assert_array_equal(log.action, raw["item_id"].to_numpy())
    np.testing.assert_array_equal(log.position, raw["position"].to_numpy() - 1)
    assert log.clicks == int(raw["click"].sum()) == 46


def test_bts_prior_matches_the_campaigns():
    for campaign in CAMPAIGNS:
        alpha, beta = load_bts_prior(campaign)
        assert alpha.shape == beta.shape == (N_ITEMS[campaign],) and np.all(alpha > 0)


def test_split_by_time_keeps_the_past_apart():
    train, test = load_open_bandit("random", "all").split_by_time(0.3)
    assert (train.n_rounds, test.n_rounds) == (7000, 3000)
    assert train.timestamp.max() <= test.timestamp.min()
    with pytest.raises(ValueError, match="test_fraction"):
        load_open_bandit().split_by_time(1.5)


@pytest.fixture
def small_copy(tmp_path):
    """The first 200 rows of random/all in the dataset's layout, to corrupt one thing at a time."""
    folder = tmp_path / "random" / "all"
    folder.mkdir(parents=True)
    source = bundled_path() / "random" / "all"
    shutil.copy(source / "item_context.csv", folder / "item_context.csv")
    pd.read_csv(source / "all.csv", index_col=0).head(200).to_csv(folder / "all.csv")
    return tmp_path


def _corrupt(root, row: int, column: str, value):
    path = root / "random" / "all" / "all.csv"
    frame = pd.read_csv(path, index_col=0)
    frame[column] = frame[column].astype(object)
    frame.iloc[row - 1, frame.columns.get_loc(column)] = value
    frame.to_csv(path)


def test_a_full_dataset_path_in_the_same_layout_loads(small_copy):
    log = load_open_bandit("random", "all", data_path=small_copy)
    assert log.n_rounds == 200 and log.source.startswith(str(small_copy))


@pytest.mark.parametrize("column, value, message", [
    ("position", 4, "not an integer in \\[1, 3\\]"),
    ("item_id", 80, "not an integer in \\[0, 79\\]"),
    ("click", 2, "not an integer in \\[0, 1\\]"),
    ("propensity_score", 0.0, "not in \\(0, 1\\]"),
    ("user-item_affinity_7", "high", "not a number"),
    ("timestamp", "yesterday", "not a timestamp"),
])
def test_a_bad_value_names_file_row_and_column(small_copy, column, value, message):
    _corrupt(small_copy, 17, column, value)
    with pytest.raises(OpenBanditFormatError, match=message) as error:
        load_open_bandit("random", "all", data_path=small_copy)
    text = str(error.value)
    assert "all.csv" in text and "row 17" in text and repr(column) in text


def test_a_missing_column_is_named(small_copy):
    path = small_copy / "random" / "all" / "all.csv"
    pd.read_csv(path, index_col=0).drop(columns=["propensity_score"]).to_csv(path)
    with pytest.raises(OpenBanditFormatError, match="missing column.*propensity_score"):
        load_open_bandit("random", "all", data_path=small_copy)


def test_missing_files_and_bad_names_say_what_to_do(small_copy, tmp_path):
    with pytest.raises(ValueError, match="missing file .*bts.*all.csv.*layout"):
        load_open_bandit("bts", "all", data_path=small_copy)
    with pytest.raises(ValueError, match="not a folder"):
        load_open_bandit("random", "all", data_path=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="behavior_policy must be one of"):
        load_open_bandit("greedy", "all")
    with pytest.raises(ValueError, match="campaign must be one of"):
        load_open_bandit("random", "kids")
    (small_copy / "random" / "all" / "all.csv").write_text("")
    with pytest.raises(OpenBanditFormatError, match="empty"):
        load_open_bandit("random", "all", data_path=small_copy)
