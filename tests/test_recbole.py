"""RecBole atomic files: any dataset with a title field loads; malformed files name file, line and field."""
import pytest

from abgym.data.recbole import RecBoleFormatError, load_recbole
from abgym.data.recommendation import build_cases


def write(folder, name, inter, item):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(inter)
    (folder / f"{name}.item").write_text(item)
    return folder


INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"u{u}\ti{i}\t5\t{i}\n" for u in range(3) for i in range(8)
)
ITEM = "item_id:token\ttitle:token_seq\tgenre:token_seq\n" + "".join(f"i{i}\tGame {i}\taction\n" for i in range(12))


def test_loads_any_named_dataset_with_title_field(tmp_path):
    folder = write(tmp_path / "amazon-games", "amazon-games", INTER, ITEM)
    data = load_recbole(folder)
    assert data.name == "amazon-games" and data.domain == "games"
    assert data.titles["i3"] == "Game 3"
    cases = build_cases(data, n_candidates=4, min_history=3)
    assert len(cases) == 3 and all(len(c.candidates) == 4 for c in cases)


def test_name_field_and_implicit_feedback(tmp_path):
    inter = "user_id:token\titem_id:token\n" + "".join(f"u0\ta{i}\n" for i in range(7))
    item = "item_id:token\tartist_name:token_seq\n" + "".join(f"a{i}\tBand {i}\n" for i in range(20))
    data = load_recbole(write(tmp_path / "lastfm", "lastfm", inter, item))
    assert data.domain == "music" and data.interactions["rating"].isna().all()
    (case,) = build_cases(data, min_history=5)
    assert case.history == tuple(f"a{i}" for i in range(6)) and case.target == "a6"


def test_bad_header(tmp_path):
    folder = write(tmp_path / "d", "d", "user_id\titem_id:token\n1\t2\n", ITEM)
    with pytest.raises(RecBoleFormatError, match=r"d\.inter: line 1: header field 'user_id'"):
        load_recbole(folder)


def test_non_numeric_float_names_line_and_field(tmp_path):
    inter = "user_id:token\titem_id:token\trating:float\n1\t2\t4\n1\t3\tgood\n"
    folder = write(tmp_path / "d", "d", inter, ITEM)
    with pytest.raises(RecBoleFormatError, match=r"line 3: field 'rating' is declared float but holds 'good'"):
        load_recbole(folder)


def test_ragged_row(tmp_path):
    folder = write(tmp_path / "d", "d", "user_id:token\titem_id:token\n1\t2\t3\n", ITEM)
    with pytest.raises(RecBoleFormatError, match=r"d\.inter: line 2: 3 tab-separated fields, the header declares 2"):
        load_recbole(folder)


def test_missing_title_field_says_how_to_fix(tmp_path):
    folder = write(tmp_path / "d", "d", INTER, "item_id:token\tgenre:token_seq\ni1\tx\n")
    with pytest.raises(RecBoleFormatError, match="title_field="):
        load_recbole(folder)


def test_missing_item_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "d.inter").write_text(INTER)
    with pytest.raises(FileNotFoundError, match=r"d\.item not found"):
        load_recbole(tmp_path / "d")


def test_missing_user_field(tmp_path):
    folder = write(tmp_path / "d", "d", "uid:token\titem_id:token\n1\t2\n", ITEM)
    with pytest.raises(RecBoleFormatError, match="user field 'user_id'"):
        load_recbole(folder)


def test_no_dataset_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a folder nor"):
        load_recbole(tmp_path / "absent")


def test_rating_declared_token_that_is_not_a_number_names_the_line(tmp_path):
    """Issue 18, finding 8: "great" gave "could not convert string to float" with no file or line."""
    inter = "user_id:token\titem_id:token\trating:token\tt:float\nu1\ti1\t4\t1\nu1\ti2\tgreat\t2\n"
    folder = write(tmp_path / "d", "d", inter, ITEM)
    with pytest.raises(RecBoleFormatError, match=r"d\.inter: line 3: field 'rating' must be a number, got 'great'"):
        load_recbole(folder)


def test_interactions_with_untitled_items_are_reported(tmp_path, caplog):
    """Issue 18, finding 6: unknown item ids were dropped without a word."""
    inter = INTER + "u9\tno-such-item\t5\t9\n"
    folder = write(tmp_path / "d", "d", inter, ITEM)
    with caplog.at_level("WARNING", logger="abgym.data.recbole"):
        data = load_recbole(folder)
    assert "1 of" in caplog.text and "'no-such-item'" in caplog.text and "not used" in caplog.text
    assert len(data.interactions) == len(INTER.strip().splitlines())  # still there; build_cases skips it


# LastFM as the RPP authors ship it (hetrec2011-lastfm-2k): the item file has name, url and picture_url, the
# interactions a float "timestamp" (the listening count) and an often empty token_seq of tags.
LASTFM_INTER = "user_id:token\titem_id:token\ttimestamp:float\ttag_value:token_seq\n" + "".join(
    f"{u}\t{(u * 5 + k) % 30 + 1}\t{(k * 7919) % 97 + 0.5 * (k % 2)}\t{'rock,indie' if k % 3 else ''}\n"
    for u in range(2, 26) for k in range(10)
)
LASTFM_ITEM = "item_id:token\tname:token\turl:token\tpicture_url:token\n" + "".join(
    f"{i}\tBand {i}\thttp://www.last.fm/music/Band+{i}\thttp://userserve-ak.last.fm/serve/252/{i}.jpg\n"
    for i in range(1, 31)
)


def test_lastfm_fields_name_url_and_float_timestamps(tmp_path):
    data = load_recbole(write(tmp_path / "lastfm", "lastfm", LASTFM_INTER, LASTFM_ITEM))
    assert data.domain == "music" and data.titles["7"] == "Band 7"  # the name field, not the urls
    assert data.interactions["timestamp"].dtype.kind == "f" and data.interactions["rating"].isna().all()
    (case, *_) = build_cases(data, min_history=5)
    rows = data.interactions[data.interactions["user"] == case.user_id].sort_values("timestamp", kind="stable")
    # in float-timestamp order, not file order (the file's values jump about): the last one is the target
    assert rows["item"].tolist() == [*case.history, case.target]
    assert rows["item"].tolist() != data.interactions[data.interactions["user"] == case.user_id]["item"].tolist()


def test_lastfm_like_dataset_runs_through_the_env_with_music_prompts(tmp_path):
    from abgym.envs import prompt_actions as pa
    from abgym.envs.prompt_personalization import parallel_env

    folder = write(tmp_path / "lastfm", "lastfm", LASTFM_INTER, LASTFM_ITEM)
    env = parallel_env({"dataset": str(folder), "recommender": "popularity", "embedder": "hashing", "rounds": 1})
    env.reset(seed=0)
    prompt = env.task.prompt(env.case, pa.HAND_WRITTEN)
    assert env.task.domain == "music" and "listen" in prompt and "Band " in prompt and "http" not in prompt
    _, rewards, terminations, _, infos = env.step({agent: env.action_space(agent).sample() for agent in env.agents})
    assert all(terminations.values()) and 0.0 <= next(iter(rewards.values())) <= 1.0
