"""The Upworthy loader: schema validation with located errors, counted drops, duplicate headlines, splits, cache."""
from __future__ import annotations

import gzip
import os
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abgym.data import upworthy
from abgym.data.upworthy import (
    DEFAULT_PATH,
    UpworthyFormatError,
    load_dataset,
    load_experiments,
    load_packages,
    split_experiments,
)

HEADER = "clickability_test_id,test_week,headline,excerpt,lede,eyecatcher_id,impressions,clicks,significance,winner"
GOOD_ROWS = [
    'a1,201401,First headline,Ex one,"<p>Lede,\nwith a line break</p>",img1,1000,10,50.0,False',
    "a1,201401,Second headline,Ex two,Lede two,img2,1000,30,99.0,True",
    "a1,201401,Second headline,Ex two,Lede two,img3,900,20,80.0,False",
    "b2,201402,Only one,,,img4,500,5,10.0,False",
    "b2,201402,Another one,,,img5,600,9,20.0,False",
]


def write_csv(tmp_path, rows, header=HEADER, name="packages.csv", gz=False):
    text = "\n".join([header, *rows]) + "\n"
    path = tmp_path / name
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- the shipped data
def test_default_dataset_loads_with_every_row_accounted_for():
    df, report = load_packages()
    assert report.path == str(DEFAULT_PATH)
    assert report.rows_read == len(df) + report.rows_dropped
    assert report.rows_read > 15_000 and report.experiments > 3_000
    experiments = load_experiments()
    assert len(experiments) == report.experiments - sum(load_dataset()[1].dropped_experiments.values())
    arms = np.array([e.n_arms for e in experiments])
    assert arms.min() >= 2 and arms.max() <= 14
    for e in experiments[:50]:
        assert e.impressions.dtype == np.int64 and e.clicks.dtype == np.int64 and e.winner.dtype == bool
        assert np.all(e.clicks <= e.impressions) and np.all(e.impressions > 0)
        assert len(e.headlines) == len(e.excerpts) == len(e.ledes) == len(e.eyecatcher_ids) == e.n_arms
        np.testing.assert_allclose(e.ctr, e.clicks / e.impressions)


def test_experiments_are_cached_and_read_only():
    first, second = load_experiments(), load_experiments()
    assert first is not second and first[0] is second[0]  # parsed once, lists are fresh copies
    with pytest.raises(ValueError):
        first[0].clicks[0] = 10**6
    df, _ = load_packages()
    df.loc[0, "clicks"] = -1  # the returned table is a copy
    assert load_packages()[0].loc[0, "clicks"] >= 0


def test_cache_notices_an_edited_file(tmp_path):
    path = write_csv(tmp_path, GOOD_ROWS)
    assert sum(e.n_arms for e in load_experiments(path)) == 5
    write_csv(tmp_path, GOOD_ROWS[:3] + ["c3,201403,X,,,i,10,1,1,False", "c3,201403,Y,,,j,10,2,1,False"])
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert sorted(e.test_id for e in load_experiments(path)) == ["a1", "c3"]


# ------------------------------------------------------------------------------------------------ reading files
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["packages.csv", "packages.csv.gz", "no_extension"])
def test_plain_and_gzipped_files_whatever_their_name(tmp_path, gz, name):
    path = write_csv(tmp_path, GOOD_ROWS, name=name, gz=gz)
    experiments = load_experiments(path)
    assert [e.test_id for e in experiments] == ["a1", "b2"]
    a1 = experiments[0]
    assert a1.headlines == ("First headline", "Second headline", "Second headline")
    assert a1.impressions.tolist() == [1000, 1000, 900] and a1.clicks.tolist() == [10, 30, 20]
    assert a1.winner.tolist() == [False, True, False] and a1.test_week == 201401


def test_extra_columns_are_allowed_and_optional_columns_may_be_missing(tmp_path):
    header = "created_at,clickability_test_id,slug,test_week,headline,impressions,clicks,square"
    rows = ["2014-01-01,t,s,201401,H1,100,1,x", "2014-01-01,t,s,201401,H2,100,3,y"]
    (experiment,) = load_experiments(write_csv(tmp_path, rows, header=header))
    assert experiment.excerpts == ("", "") and experiment.eyecatcher_ids == ("", "")
    assert experiment.winner.tolist() == [False, False]


def test_archive_style_index_column_and_byte_order_mark(tmp_path):
    # The archive's files start with an unnamed index column; spreadsheet exports add a BOM.
    rows = [f"{i},{row}" for i, row in enumerate(GOOD_ROWS)]
    indexed = write_csv(tmp_path, rows, header="," + HEADER, name="indexed.csv")
    assert [e.n_arms for e in load_experiments(indexed)] == [3, 2]
    marked = write_csv(tmp_path, GOOD_ROWS, header="\ufeff" + HEADER, name="bom.csv")
    assert [e.n_arms for e in load_experiments(marked)] == [3, 2]


@pytest.mark.parametrize(
    "row, column, words",
    [
        ("a1,201401,H,E,L,i,many,3,1,False", "impressions", "whole number"),
        ("a1,201401,H,E,L,i,-5,0,1,False", "impressions", "negative"),
        ("a1,201401,H,E,L,i,100,-1,1,False", "clicks", "negative"),
        ("a1,201401,H,E,L,i,10.5,1,1,False", "impressions", "whole number"),
        ("a1,201401,H,E,L,i,100,101,1,False", "clicks", "above impressions"),
        ("a1,201401,   ,E,L,i,100,1,1,False", "headline", "empty headline"),
        ("a1,week,H,E,L,i,100,1,1,False", "test_week", "whole number"),
        (",201401,H,E,L,i,100,1,1,False", "clickability_test_id", "empty test id"),
        ("a1,201401,H,E,L,i,100,1,1,maybe", "winner", "True or False"),
    ],
)
def test_bad_values_name_file_row_and_column(tmp_path, row, column, words):
    # The bad row is the third data row; the first has a quoted line break, so CSV lines and rows differ.
    path = write_csv(tmp_path, GOOD_ROWS[:2] + [row] + GOOD_ROWS[3:])
    with pytest.raises(UpworthyFormatError) as caught:
        load_packages(path)
    error = caught.value
    assert (error.row, error.column) == (3, column)
    message = str(error)
    assert str(path) in message and "row 3" in message and repr(column) in message and words in message
    assert "Fix:" in message


def test_missing_columns_are_named(tmp_path):
    path = write_csv(tmp_path, ["a,201401,H,100"], header="clickability_test_id,test_week,headline,impressions")
    with pytest.raises(UpworthyFormatError, match=r"missing column\(s\) \['clicks'\].*Fix:"):
        load_packages(path)


@pytest.mark.parametrize(
    "content, words",
    [(b"", "empty"), (b"\x1f\x8b\x08garbage", "cannot be read"), (b"\xff\xfe\x00bad", "cannot be read")],
)
def test_unreadable_files_raise_format_errors(tmp_path, content, words):
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(UpworthyFormatError, match=words):
        load_packages(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found.*data_path"):
        load_packages(tmp_path / "nope.csv")
    with pytest.raises(UpworthyFormatError, match="folder"):
        load_packages(tmp_path)


def test_dropped_rows_and_experiments_are_counted_and_logged(tmp_path, caplog):
    rows = GOOD_ROWS + [
        "a1,201401,Never shown,,,img9,0,0,0,False",  # no traffic
        GOOD_ROWS[1],  # the same row twice
        "c3,201403,Lonely,,,img6,100,1,1,False",  # a one-arm test
    ]
    path = write_csv(tmp_path, rows)
    with caplog.at_level("WARNING", logger="abgym.data.upworthy"):
        experiments, report = load_dataset(path)
    assert report.rows_read == 8 and report.rows_kept == 6
    assert report.dropped_rows == {"zero_impressions": 1, "duplicate_row": 1}
    assert report.dropped_experiments == {"fewer_than_2_arms": 1}
    assert [e.test_id for e in experiments] == ["a1", "b2"]
    assert "zero_impressions" in caplog.text and "fewer_than_2_arms" in caplog.text
    assert "dropped rows: 1 duplicate_row, 1 zero_impressions" in report.summary()


# ------------------------------------------------------------------------------------- duplicate headlines policy
def test_image_variants_are_separate_arms_unless_merged(tmp_path):
    path = write_csv(tmp_path, GOOD_ROWS)
    a1 = load_experiments(path)[0]
    assert a1.n_arms == 3 and a1.eyecatcher_ids == ("img1", "img2", "img3")
    merged = load_experiments(path, merge_identical=("headline",))[0]
    assert merged.headlines == ("First headline", "Second headline")
    assert merged.impressions.tolist() == [1000, 1900] and merged.clicks.tolist() == [10, 50]
    assert merged.winner.tolist() == [False, True]
    assert merged.eyecatcher_ids == ("img1", "img2|img3")


def test_merging_drops_tests_that_only_varied_the_image(tmp_path):
    rows = GOOD_ROWS + ["d4,201404,Same,,,i1,100,1,1,False", "d4,201404,Same,,,i2,100,2,1,False"]
    path = write_csv(tmp_path, rows)
    assert "d4" in [e.test_id for e in load_experiments(path)]
    experiments, report = load_dataset(path, merge_identical="headline")
    assert "d4" not in [e.test_id for e in experiments]
    assert report.dropped_experiments == {"fewer_than_2_arms_after_merge": 1}


def test_shipped_data_reports_image_variants():
    _, report = load_packages()
    assert report.shared_headline_packages > 1000  # thousands of packages differ from a sibling only by image
    merged = load_experiments(merge_identical=("headline",))
    for e in merged[:200]:
        assert len(set(e.headlines)) == e.n_arms


def test_texts_join_fields_and_strip_html(tmp_path):
    a1 = load_experiments(write_csv(tmp_path, GOOD_ROWS))[0]
    assert a1.texts() == ["First headline", "Second headline", "Second headline"]
    assert a1.texts(("headline", "excerpt", "lede"))[0] == "First headline. Ex one. Lede, with a line break"
    b2 = load_experiments(write_csv(tmp_path, GOOD_ROWS, name="b.csv"))[1]
    assert b2.texts(("headline", "excerpt")) == ["Only one", "Another one"]  # empty excerpts skipped
    with pytest.raises(ValueError, match="unknown text field"):
        a1.texts(("title",))


# ----------------------------------------------------------------------------------------------------- splits
@pytest.mark.parametrize("split_by", ["hash", "week"])
def test_splits_are_disjoint_complete_and_deterministic(split_by):
    everything = {e.test_id for e in load_experiments()}
    train = [e.test_id for e in load_experiments(split="train", split_by=split_by)]
    test = [e.test_id for e in load_experiments(split="test", split_by=split_by)]
    assert not set(train) & set(test) and set(train) | set(test) == everything
    assert 0.15 < len(test) / len(everything) < 0.3
    assert test == [e.test_id for e in load_experiments(split="test", split_by=split_by)]


def test_week_split_puts_the_latest_weeks_in_test():
    train = load_experiments(split="train", split_by="week")
    test = load_experiments(split="test", split_by="week")
    assert max(e.test_week for e in train) < min(e.test_week for e in test)


def test_hash_split_does_not_depend_on_the_other_experiments():
    experiments = load_experiments()
    full = {e.test_id for e in split_experiments(experiments, "test")}
    half = {e.test_id for e in split_experiments(experiments[::2], "test")}
    assert half == {e.test_id for e in experiments[::2]} & full


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(split="validation"), "unknown split"),
        (dict(split="test", split_by="random"), "unknown split_by"),
        (dict(split="test", test_fraction=1.5), "test_fraction"),
        (dict(merge_identical=("title",)), "merge_identical"),
        (dict(min_arms=0), "min_arms"),
    ],
)
def test_bad_options_are_rejected(kwargs, words):
    with pytest.raises(ValueError, match=words):
        load_experiments(**kwargs)


# ------------------------------------------------------------------------------------------- property: any table
packages = st.lists(
    st.tuples(
        st.sampled_from(["t1", "t2", "t3", "t4"]),
        st.sampled_from(["Alpha", "Beta", "Gamma"]),
        st.integers(1, 5000),
        st.floats(0, 1),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=packages, merge=st.booleans())
def test_counts_survive_loading_and_merging(tmp_path_factory, rows, merge):
    tmp = tmp_path_factory.mktemp("prop")
    lines = [
        f"{test},2014{ord(test[1]):02d},{headline},,,img{i},{shown},{int(shown * share)},0,False"
        for i, (test, headline, shown, share) in enumerate(rows)
    ]
    path = write_csv(tmp, lines)
    experiments, report = load_dataset(path, merge_identical=("headline",) if merge else None, min_arms=1)
    frame = pd.DataFrame(rows, columns=["test", "headline", "shown", "share"])
    frame["clicks"] = (frame.shown * frame.share).astype(int)
    assert report.rows_kept == len(rows)
    assert {e.test_id for e in experiments} == set(frame.test)
    for e in experiments:
        mine = frame[frame.test == e.test_id]
        assert e.impressions.sum() == mine.shown.sum() and e.clicks.sum() == mine.clicks.sum()
        assert e.n_arms == (mine.headline.nunique() if merge else len(mine))


def test_parsing_the_default_file_is_cached():
    upworthy.load_packages()
    start = time.perf_counter()
    for _ in range(20):
        load_experiments(split="test")
    assert time.perf_counter() - start < 1.0  # 20 loads, no re-parsing of 18k rows


@pytest.mark.parametrize("split_by", ["hash", "week"])
def test_merged_train_split_never_holds_a_test_experiment(split_by):
    """The ranker trains on the merged train split; the env replays the unmerged test split: they must not meet."""
    merged_train = {e.test_id for e in load_experiments(split="train", split_by=split_by, merge_identical="headline")}
    test = {e.test_id for e in load_experiments(split="test", split_by=split_by)}
    assert merged_train and test and not merged_train & test
