"""RecBole atomic files (``<name>.inter``, ``<name>.item``): the common public format of ML-1M, LastFM, Amazon and more.

Each file is tab-separated with a typed header, ``field:type`` with type in token, token_seq, float, float_seq
(https://recbole.io/docs/user_guide/data/atomic_files.html). Any dataset in this format with a title or name field
in its ``.item`` file loads unchanged: the title field is ``title_field`` if given, else the first field whose name
contains "title", else the first containing "name".
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from abgym.data.recommendation import RatingsDataset

FIELD_TYPES = {"token", "token_seq", "float", "float_seq"}
logger = logging.getLogger(__name__)


class RecBoleFormatError(ValueError):
    """A malformed atomic file; the message names the file, the line (1-based, header is line 1) and the field."""


def _read_atomic(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().rstrip("\r\n")
    if not header:
        raise RecBoleFormatError(f"{path}: line 1: empty file; expected a header of tab-separated 'field:type'")
    names, types = [], {}
    for column in header.split("\t"):
        name, sep, kind = column.partition(":")
        if not sep or kind not in FIELD_TYPES or not name:
            raise RecBoleFormatError(
                f"{path}: line 1: header field {column!r} is not 'name:type' with type in {sorted(FIELD_TYPES)}"
            )
        names.append(name)
        types[name] = kind
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if line and line.count("\t") != len(names) - 1:
                raise RecBoleFormatError(
                    f"{path}: line {line_no}: {line.count(chr(9)) + 1} tab-separated fields, "
                    f"the header declares {len(names)}"
                )
    try:
        frame = pd.read_csv(
            path, sep="\t", header=0, names=names, dtype=str, quoting=csv.QUOTE_NONE, keep_default_na=False,
            encoding="utf-8", encoding_errors="replace", on_bad_lines="error", engine="c", index_col=False, skip_blank_lines=True,
        )
    except pd.errors.ParserError as error:
        raise RecBoleFormatError(f"{path}: {error} (header has {len(names)} tab-separated fields)") from None
    for name, kind in types.items():
        if kind == "float":
            values = pd.to_numeric(frame[name].replace("", None), errors="coerce")
            bad = values.isna() & (frame[name] != "")
            if bad.any():
                row = int(bad.to_numpy().nonzero()[0][0])
                raise RecBoleFormatError(
                    f"{path}: line {row + 2}: field {name!r} is declared float but holds {frame[name].iloc[row]!r}"
                )
            frame[name] = values
    return frame, types


def _numbers(values, path: Path, field: str):
    """A rating or timestamp column as floats; a value that is not a number names its line (header is line 1)."""
    if not isinstance(values, pd.Series):
        return values
    numbers = pd.to_numeric(values.replace("", None), errors="coerce").astype(float)
    bad = numbers.isna() & values.notna() & (values.astype(str) != "")
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise RecBoleFormatError(f"{path}: line {row + 2}: field {field!r} must be a number, got "
                                 f"{values.iloc[row]!r}")
    return numbers


def _require(frame: pd.DataFrame, path: Path, field: str, role: str) -> None:
    if field not in frame.columns:
        raise RecBoleFormatError(
            f"{path}: no {role} field {field!r}; fields are {list(frame.columns)} (pass {role}_field=...)"
        )


def find_title_field(columns, path: Path, title_field: str | None = None) -> str:
    if title_field is not None:
        if title_field not in columns:
            raise RecBoleFormatError(f"{path}: no title field {title_field!r}; fields are {list(columns)}")
        return title_field
    for word in ("title", "name"):
        for column in columns:
            if word in column.lower():
                return column
    raise RecBoleFormatError(
        f"{path}: no item title field (none contains 'title' or 'name'); fields are {list(columns)}; "
        "pass title_field=... naming the field to show the language model"
    )


# Words in a dataset's name or its .item fields that say which prompt wording fits (checked in this order).
DOMAIN_WORDS = (
    ("movies", ("movie", "ml-", "film", "netflix", "director", "imdb")),
    ("music", ("music", "lastfm", "artist", "track", "song", "album")),
    ("games", ("game", "steam", "platform", "developer", "publisher")),
)


def guess_domain(dataset_name: str, title_field: str, fields=()) -> str:
    """movies, music or games when the dataset's name, title field or other ``.item`` fields name one (e.g. Steam's
    ``publisher``, LastFM's ``artist_name``), else products (the generic wording: Amazon's ``brand``, ``price``)."""
    text = " ".join([dataset_name, title_field, *fields]).lower()
    for domain, words in DOMAIN_WORDS:
        if any(w in text for w in words):
            return domain
    return "products"


def resolve_inter_path(path: str | Path, dataset: str | None = None) -> Path:
    """``path`` is an ``.inter`` file, or a folder holding ``<dataset>.inter`` (dataset defaults to the folder name)."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".inter":
            raise RecBoleFormatError(f"{path}: expected a RecBole .inter file or the folder holding it")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"RecBole dataset not found: {path} is neither a folder nor a .inter file")
    name = dataset or path.name
    inter = path / f"{name}.inter"
    if inter.is_file():
        return inter
    found = sorted(p.name for p in path.glob("*.inter"))
    if len(found) == 1 and dataset is None:
        return path / found[0]
    raise FileNotFoundError(
        f"{inter} not found; .inter files in {path}: {found or 'none'} (pass dataset=<name> to pick one)"
    )


def load_recbole(
    path: str | Path,
    dataset: str | None = None,
    *,
    title_field: str | None = None,
    user_field: str = "user_id",
    item_field: str = "item_id",
    rating_field: str = "rating",
    time_field: str = "timestamp",
    domain: str | None = None,
) -> RatingsDataset:
    """Load ``<name>.inter`` and ``<name>.item``. Missing ratings mean implicit feedback; missing timestamps, file order."""
    inter_path = resolve_inter_path(path, dataset)
    item_path = inter_path.with_suffix(".item")
    if not item_path.is_file():
        raise FileNotFoundError(
            f"{item_path} not found: prompt personalization needs item titles from the dataset's .item file"
        )
    inter, _ = _read_atomic(inter_path)
    _require(inter, inter_path, user_field, "user")
    _require(inter, inter_path, item_field, "item")
    items, _ = _read_atomic(item_path)
    _require(items, item_path, item_field, "item")
    title = find_title_field(items.columns, item_path, title_field)

    rating = inter[rating_field] if rating_field in inter.columns else float("nan")
    timestamp = inter[time_field] if time_field in inter.columns else range(len(inter))
    frame = pd.DataFrame(
        {"user": inter[user_field], "item": inter[item_field], "rating": rating, "timestamp": timestamp}
    )
    for column, field in (("rating", rating_field), ("timestamp", time_field)):
        frame[column] = _numbers(frame[column], inter_path, field)
    titles = {
        str(i): str(t).strip()
        for i, t in zip(items[item_field], items[title])
        if str(t).strip()
    }
    untitled = ~frame["item"].isin(titles.keys())
    if untitled.any():  # build_cases cannot show an item without a title to the language model: say so
        logger.warning(
            "%s: %d of %d interactions (%d distinct items, e.g. %r) name an item with no title in %s; they are not "
            "used", inter_path, int(untitled.sum()), len(frame), frame.loc[untitled, "item"].nunique(),
            frame.loc[untitled, "item"].iloc[0], item_path)
    name = inter_path.stem
    return RatingsDataset(name, domain or guess_domain(name, title, list(items.columns)), frame, titles,
                          source=str(inter_path))
