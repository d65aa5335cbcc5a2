"""MovieLens-100K loader: finding the data, reading both formats, clear errors."""
import pytest

from abgym.data import movielens
from abgym.data.movielens import MovieLensFormatError, find_movielens_dir, load_movielens_100k, readable_title

GENRES = "|".join(["0"] * 19)


def write_grouplens(folder, data_lines, item_lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(line + "\n" for line in data_lines))
    (folder / "u.item").write_text("".join(line + "\n" for line in item_lines), encoding="latin-1")
    return folder


def test_reads_grouplens_files_and_fixes_titles(tmp_path):
    folder = write_grouplens(
        tmp_path / "ml",
        ["1\t10\t5\t100", "1\t11\t3\t50", "2\t10\t4\t70"],
        [f"10|Usual Suspects, The (1995)|01-Jan-1995||http://x|{GENRES}", f"11|Heat (1995)|01-Jan-1995||u|{GENRES}"],
    )
    data = load_movielens_100k(folder)
    assert data.titles == {"10": "The Usual Suspects (1995)", "11": "Heat (1995)"}
    assert len(data.interactions) == 3
    assert data.interactions["rating"].tolist() == [5.0, 3.0, 4.0]
    assert data.domain == "movies"


def test_malformed_rating_names_file_and_line(tmp_path):
    folder = write_grouplens(tmp_path / "ml", ["1\t10\t5\t100", "1\t11\tfive\t50"], [f"10|A (1990)|d||u|{GENRES}"])
    with pytest.raises(MovieLensFormatError, match=r"u\.data: line 2: rating 'five'"):
        load_movielens_100k(folder)


def test_wrong_field_count_in_items(tmp_path):
    folder = write_grouplens(tmp_path / "ml", ["1\t10\t5\t100"], ["10|Only a title"])
    with pytest.raises(MovieLensFormatError, match=r"u\.item: line 1: expected 24"):
        load_movielens_100k(folder)


def test_missing_everywhere_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_MOVIELENS_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(movielens, "shared_data_dir", lambda: None)
    monkeypatch.setattr(movielens.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError) as error:
        find_movielens_dir()
    message = str(error.value)
    for place in ("$ABGYM_MOVIELENS_DIR", "../shared/data/movielens-100k", "recbole", "grouplens.org"):
        assert place in message


def test_explicit_path_is_not_silently_replaced(tmp_path):
    with pytest.raises(FileNotFoundError, match="the path given"):
        find_movielens_dir(tmp_path)


def test_environment_variable_is_used(tmp_path, monkeypatch):
    folder = write_grouplens(tmp_path / "env", ["1\t10\t5\t100"], [f"10|A (1990)|d||u|{GENRES}"])
    monkeypatch.setenv("ABGYM_MOVIELENS_DIR", str(folder))
    assert find_movielens_dir() == (folder, "grouplens")


@pytest.mark.parametrize(
    "raw, readable",
    [("Usual Suspects, The (1995)", "The Usual Suspects (1995)"), ("Heat (1995)", "Heat (1995)"),
     ("Good, The Bad and The Ugly, The (1966)", "The Good, The Bad and The Ugly (1966)")],
)
def test_readable_title(raw, readable):
    assert readable_title(raw) == readable


def test_real_movielens_is_found_and_loads():
    # The set-up always provides it (../shared/data, or the recbole package the Makefile installs): no skip.
    folder, _ = find_movielens_dir()
    data = load_movielens_100k(folder)
    assert data.n_users == 943 and len(data.interactions) == 100_000
    assert data.n_items >= 1681
