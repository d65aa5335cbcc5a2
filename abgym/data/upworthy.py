"""The Upworthy Research Archive: validated packages and experiments in the archive's own CSV schema.

The archive (Matias, Munger, Aubin Le Quere and Ebersole, 2021; CC BY 4.0) records 32,487 headline A/B tests run by
Upworthy in 2013-2015. Each row is one *package* (a headline, excerpt, lede and image shown to a random share of
visitors) with its impressions and clicks; the packages of one ``clickability_test_id`` form one experiment. abgym
ships a subset of the exploratory file as its default dataset (:data:`DEFAULT_PATH`).

The loader reads any of the archive's package files (exploratory, confirmatory, holdout: they share the schema),
plain or gzipped, with extra columns allowed. It is strict about what would silently corrupt results (missing
columns, non-numeric or negative counts, clicks above impressions, empty headlines): those raise
:class:`UpworthyFormatError` naming the file, the data row and the column. Rows that carry no information are
dropped on purpose and counted by reason in a :class:`LoadReport` (and logged). See docs/upworthy.md.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import html
import logging
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_PATH",
    "REQUIRED_COLUMNS",
    "TEXT_FIELDS",
    "Experiment",
    "LoadReport",
    "UpworthyFormatError",
    "load_packages",
    "load_experiments",
    "load_dataset",
    "split_experiments",
    "held_out_weeks",
]

logger = logging.getLogger(__name__)

DEFAULT_PATH: Path = Path(__file__).resolve().parent / "files" / "upworthy-exploratory-dev.csv.gz"

# Columns the loader needs. The archive's files have more (created_at, slug, significance, share_text, square, ...):
# extra columns are kept in the packages table and otherwise ignored.
REQUIRED_COLUMNS = ("clickability_test_id", "test_week", "headline", "impressions", "clicks")
# Columns read when present, with the value used when the column is absent from the file.
OPTIONAL_COLUMNS = {"excerpt": "", "lede": "", "eyecatcher_id": "", "winner": False}
TEXT_FIELDS = ("headline", "excerpt", "lede")
SPLITS = ("train", "test", "all")
SPLIT_BYS = ("hash", "week")

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n", ""}
# Counts are parsed as floats (to accept "12.0"); beyond 2**53 a float no longer holds every whole number.
MAX_COUNT = 2**53
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


class UpworthyFormatError(ValueError):
    """A package file that does not follow the archive's schema. The message names file, row and column."""

    def __init__(self, path, message: str, *, row: int | None = None, column: str | None = None, fix: str = ""):
        self.path, self.row, self.column = str(path), row, column
        where = [f"file {self.path}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        text = f"{', '.join(where)}: {message}"
        if fix:
            text += f". Fix: {fix}"
        super().__init__(text)


@dataclass
class LoadReport:
    """What the loader read, kept and dropped, and why. Nothing is dropped without being counted here."""

    path: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped_rows: Counter = field(default_factory=Counter)  # reason -> rows
    experiments: int = 0  # experiments formed from the kept rows, before any split
    dropped_experiments: Counter = field(default_factory=Counter)  # reason -> experiments
    identical_packages: int = 0  # packages whose headline, excerpt, lede and image repeat another of the same test
    shared_headline_packages: int = 0  # packages whose headline repeats another of the same test (image variants)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped_rows.values())

    def summary(self) -> str:
        parts = [f"{self.path}: {self.rows_read} rows read, {self.rows_kept} kept"]
        if self.dropped_rows:
            parts.append("dropped rows: " + ", ".join(f"{n} {why}" for why, n in sorted(self.dropped_rows.items())))
        if self.experiments:
            parts.append(f"{self.experiments} experiments")
        if self.dropped_experiments:
            parts.append(
                "dropped experiments: "
                + ", ".join(f"{n} {why}" for why, n in sorted(self.dropped_experiments.items()))
            )
        return "; ".join(parts)


@dataclass(frozen=True, eq=False)
class Experiment:
    """One A/B test of the archive: its packages are the arms. Arrays are read-only (they are cached and shared)."""

    test_id: str
    test_week: int
    headlines: tuple[str, ...]
    excerpts: tuple[str, ...]
    ledes: tuple[str, ...]
    eyecatcher_ids: tuple[str, ...]
    impressions: np.ndarray
    clicks: np.ndarray
    winner: np.ndarray  # the editors' pick, as recorded (not a statistical test)

    @property
    def ctr(self) -> np.ndarray:
        return self.clicks / self.impressions

    @property
    def n_arms(self) -> int:
        return len(self.headlines)

    def texts(self, fields: Sequence[str] = ("headline",)) -> list[str]:
        """Per arm, the given text fields joined with ". " (HTML tags of ledes removed, empty fields skipped)."""
        if isinstance(fields, str):
            fields = (fields,)
        unknown = [f for f in fields if f not in TEXT_FIELDS]
        if unknown:
            raise ValueError(f"unknown text field(s) {unknown}; choose from {list(TEXT_FIELDS)}")
        columns = [getattr(self, f + "s") for f in fields]
        texts = []
        for arm in range(self.n_arms):
            text = ""
            for part in (_plain_text(column[arm]) for column in columns):
                if part:
                    text = f"{text}{'' if not text else ' ' if text[-1] in '.!?' else '. '}{part}"
            texts.append(text)
        return texts

    def __repr__(self) -> str:
        return f"Experiment(test_id={self.test_id!r}, test_week={self.test_week}, n_arms={self.n_arms})"


def _plain_text(text: str) -> str:
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


# --------------------------------------------------------------------------------------------------- reading files
def _resolve(path) -> Path:
    path = DEFAULT_PATH if path is None else Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"Upworthy package file not found: {path}. Pass the path of one of the archive's package CSVs "
            f"(plain or .gz), or leave data_path unset for the shipped subset {DEFAULT_PATH.name}."
        )
    if path.is_dir():
        raise UpworthyFormatError(path, "is a folder", fix="pass the path of a package CSV file inside it")
    return path.resolve()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            compression="gzip" if _is_gzip(path) else None,
            encoding="utf-8-sig",  # tolerate a byte-order mark (spreadsheet exports)
        )
    except pd.errors.EmptyDataError:
        raise UpworthyFormatError(path, "the file is empty", fix="export the package table with its header row")
    except pd.errors.ParserError as err:
        raise UpworthyFormatError(path, f"not a well-formed CSV ({err})", fix="check quoting and field counts")
    except (ValueError, gzip.BadGzipFile, zlib.error, EOFError, OSError) as err:  # ValueError: UnicodeDecodeError
        raise UpworthyFormatError(
            path, f"cannot be read as UTF-8 CSV text ({err})", fix="pass a plain or gzipped UTF-8 CSV"
        ) from err


def _fail(path, series: pd.Series, bad: np.ndarray, message: str, fix: str):
    first = int(np.flatnonzero(bad)[0])
    value = series.iloc[first]
    count = int(bad.sum())
    more = f" ({count - 1} more rows like it)" if count > 1 else ""
    raise UpworthyFormatError(path, f"{message}, got {value!r}{more}", row=first + 1, column=series.name, fix=fix)


def _integers(path, df: pd.DataFrame, column: str, fix: str) -> np.ndarray:
    raw = df[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        _fail(path, df[column], bad, "expected a whole number", fix)
    huge = np.abs(values) > MAX_COUNT
    if huge.any():
        _fail(path, df[column], huge, f"number too large (the loader reads at most {MAX_COUNT:,})",
              "check the value; no Upworthy test came near this")
    return values.astype(np.int64)


def _booleans(path, df: pd.DataFrame, column: str) -> np.ndarray:
    raw = df[column].str.strip().str.lower()
    bad = ~raw.isin(_TRUE | _FALSE).to_numpy()
    if bad.any():
        _fail(path, df[column], bad, "expected True or False", "write True/False (or 1/0), or leave it empty")
    return raw.isin(_TRUE).to_numpy()


def _validate(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    df.columns = [str(c).strip() for c in df.columns]
    # A column named twice: pandas keeps both, as "name" twice (after the strip) or as "name" and "name.1".
    names = Counter(df.columns)
    for column in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        if names[column] > 1 or f"{column}.1" in names:
            raise UpworthyFormatError(path, "the column appears more than once in the header", column=column,
                                      fix="keep one column of that name")
    if df.empty:
        raise UpworthyFormatError(path, "the file has a header but no data rows",
                                  fix="export the package table with its rows")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UpworthyFormatError(
            path,
            f"missing column(s) {missing}; the file has {list(df.columns)[:12]}",
            column=missing[0],
            fix=f"use the archive's package schema: it needs {list(REQUIRED_COLUMNS)}",
        )
    for column, default in OPTIONAL_COLUMNS.items():
        if column not in df.columns:
            df[column] = "False" if default is False else default

    test_ids = df["clickability_test_id"].str.strip()
    if (test_ids == "").any():
        _fail(path, df["clickability_test_id"], (test_ids == "").to_numpy(), "empty test id",
              "every package needs the clickability_test_id of its test")
    impressions = _integers(path, df, "impressions", "impressions must be a non-negative whole number")
    clicks = _integers(path, df, "clicks", "clicks must be a non-negative whole number")
    for column, values in (("impressions", impressions), ("clicks", clicks)):
        if (values < 0).any():
            _fail(path, df[column], values < 0, f"negative {column}", f"{column} must be >= 0")
    above = clicks > impressions
    if above.any():
        row = int(np.flatnonzero(above)[0])
        more = f" ({int(above.sum()) - 1} more rows like it)" if above.sum() > 1 else ""
        raise UpworthyFormatError(
            path,
            f"clicks ({clicks[row]}) above impressions ({impressions[row]}){more}",
            row=row + 1,
            column="clicks",
            fix="clicks count visitors who clicked among those who saw the package; check the two columns",
        )
    weeks = _integers(path, df, "test_week", "test_week is the year and week number, e.g. 201446")
    headlines = df["headline"].str.strip()
    empty = (headlines == "").to_numpy()
    if empty.any():
        _fail(path, df["headline"], empty, "empty headline", "every package needs its headline text")

    out = df.copy()
    out["clickability_test_id"] = test_ids
    out["headline"] = headlines
    for column in ("excerpt", "lede", "eyecatcher_id"):
        out[column] = out[column].str.strip()
    out["impressions"] = impressions
    out["clicks"] = clicks
    out["test_week"] = weeks
    out["winner"] = _booleans(path, df, "winner")
    return out


def _file_key(path) -> tuple[str, int, int]:
    path = _resolve(path)
    stat = os.stat(path)
    return str(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _load_packages_cached(path: str, mtime_ns: int, size: int) -> tuple[pd.DataFrame, LoadReport]:
    del mtime_ns, size  # part of the cache key only: an edited file is parsed again
    raw = _read_csv(Path(path))
    report = LoadReport(path=path, rows_read=len(raw))
    df = _validate(Path(path), raw)
    # Packages that were never shown carry no click-through information and cannot be replayed as an arm.
    no_traffic = df["impressions"].to_numpy() == 0
    if no_traffic.any():
        report.dropped_rows["zero_impressions"] += int(no_traffic.sum())
        df = df[~no_traffic]
    # A row recorded twice (every column equal) would count its traffic twice.
    repeated = df.duplicated(keep="first").to_numpy()
    if repeated.any():
        report.dropped_rows["duplicate_row"] += int(repeated.sum())
        df = df[~repeated]
    df = df.reset_index(drop=True)
    report.rows_kept = len(df)
    if df.empty:
        raise UpworthyFormatError(path, f"no package is left to replay ({report.summary()})",
                                  column="impressions", fix="a package needs impressions > 0 to be an arm")
    group = df.groupby("clickability_test_id", sort=False)
    report.identical_packages = int(df.duplicated(["clickability_test_id", "headline", "excerpt", "lede",
                                                   "eyecatcher_id"]).sum())
    report.shared_headline_packages = int(df.duplicated(["clickability_test_id", "headline"]).sum())
    report.experiments = group.ngroups
    if report.rows_dropped:
        logger.warning("Upworthy loader dropped rows: %s", report.summary())
    else:
        logger.info("Upworthy loader: %s", report.summary())
    return df, report


def load_packages(path=None) -> tuple[pd.DataFrame, LoadReport]:
    """Read and validate a package file; return its kept rows and the report of what was dropped and why.

    The parsed file is cached in memory by path, modification time and size, so that many environments built on the
    same file parse it once. The returned table is a copy: changing it does not change the cache.
    """
    df, report = _load_packages_cached(*_file_key(path))
    return df.copy(), _copy_report(report)


def _copy_report(report: LoadReport) -> LoadReport:
    """A copy the caller may change without changing the cached report."""
    return dataclasses.replace(
        report, dropped_rows=Counter(report.dropped_rows), dropped_experiments=Counter(report.dropped_experiments)
    )


# ------------------------------------------------------------------------------------------------------ experiments
def _frozen(values, dtype) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    array.flags.writeable = False
    return array


def _merge_identical(df: pd.DataFrame, fields: tuple[str, ...]) -> pd.DataFrame:
    """One row per test and distinct text in ``fields``: counts summed, the editors' pick kept if any was picked."""
    merged = df.groupby(["clickability_test_id", *fields], sort=False).agg(
        test_week=("test_week", "first"),
        headline_=("headline", "first"),
        excerpt_=("excerpt", "first"),
        lede_=("lede", "first"),
        eyecatcher_id_=("eyecatcher_id", lambda ids: "|".join(dict.fromkeys(i for i in ids if i))),
        impressions=("impressions", "sum"),
        clicks=("clicks", "sum"),
        winner=("winner", "any"),
    )
    merged = merged.reset_index()
    for column in ("headline", "excerpt", "lede", "eyecatcher_id"):
        merged[column] = merged.pop(column + "_")
    return merged


def _experiments_from(df: pd.DataFrame) -> list[Experiment]:
    """Split the package table into experiments with numpy slicing (a pandas groupby per test is ten times slower)."""
    if df.empty:
        return []
    codes, test_ids = pd.factorize(df["clickability_test_id"])
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    columns = {c: df[c].to_numpy()[order] for c in ("headline", "excerpt", "lede", "eyecatcher_id", "test_week")}
    impressions, clicks, winner = (df[c].to_numpy()[order] for c in ("impressions", "clicks", "winner"))
    experiments = []
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(order)]):
        experiments.append(
            Experiment(
                test_id=str(test_ids[codes[order[start]]]),
                test_week=int(columns["test_week"][start]),
                headlines=tuple(columns["headline"][start:stop].tolist()),
                excerpts=tuple(columns["excerpt"][start:stop].tolist()),
                ledes=tuple(columns["lede"][start:stop].tolist()),
                eyecatcher_ids=tuple(columns["eyecatcher_id"][start:stop].tolist()),
                impressions=_frozen(impressions[start:stop], np.int64),
                clicks=_frozen(clicks[start:stop], np.int64),
                winner=_frozen(winner[start:stop], bool),
            )
        )
    return experiments


@functools.lru_cache(maxsize=None)
def _hash_unit(test_id: str) -> float:
    """A stable number in [0, 1) per test id (Python's hash() is salted per process, so it cannot be used)."""
    return int.from_bytes(hashlib.sha1(test_id.encode("utf-8")).digest()[:8], "big") / 2.0**64


def held_out_weeks(tests_per_week: Mapping[int, int], test_fraction: float) -> set[int]:
    """The latest weeks, taken whole, until they hold at least ``test_fraction`` of the tests."""
    needed, taken, weeks = test_fraction * sum(tests_per_week.values()), 0, set()
    for week in sorted(tests_per_week, reverse=True):
        if taken >= needed:
            break
        weeks.add(week)
        taken += tests_per_week[week]
    return weeks


def split_experiments(
    experiments: Sequence[Experiment],
    split: str = "all",
    split_by: str = "hash",
    test_fraction: float = 0.2,
    *,
    tests_per_week: Mapping[int, int] | None = None,
) -> list[Experiment]:
    """Deterministic train/test split: by a hash of the test id, or by week (the latest weeks are the test split).

    The hash split decides each test on its own id, so it agrees across files and filters. The week split takes whole
    weeks from the latest backwards until at least ``test_fraction`` of the tests are in the test split, so that no
    week is on both sides; ``tests_per_week`` (default: counted from ``experiments``) fixes the cut-off, and
    :func:`load_experiments` counts every test of the file, so that a merged or filtered list is cut at the same week
    as the full one (a text model trained on the merged train split never sees a test-split experiment).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    if split_by not in SPLIT_BYS:
        raise ValueError(f"unknown split_by {split_by!r}; choose from {list(SPLIT_BYS)}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}")
    if split == "all":
        return list(experiments)
    if split_by == "hash":
        in_test = [_hash_unit(e.test_id) < test_fraction for e in experiments]
    else:
        if tests_per_week is None:
            tests_per_week = Counter(e.test_week for e in experiments)
        held_out = held_out_weeks(tests_per_week, test_fraction)
        in_test = [e.test_week in held_out for e in experiments]
    want_test = split == "test"
    return [e for e, t in zip(experiments, in_test) if t == want_test]


@functools.lru_cache(maxsize=16)
def _experiments_cached(
    key: tuple[str, int, int], merge_identical: tuple[str, ...] | None, min_arms: int
) -> tuple[tuple[Experiment, ...], LoadReport]:
    df, report = _load_packages_cached(*key)
    report = _copy_report(report)
    if merge_identical:
        df = _merge_identical(df, merge_identical)
    experiments = []
    for experiment in _experiments_from(df):
        if experiment.n_arms < min_arms:
            reason = f"fewer_than_{min_arms}_arms" + ("_after_merge" if merge_identical else "")
            report.dropped_experiments[reason] += 1
            continue
        experiments.append(experiment)
    # A fixed order (by week, then id) so that an experiment's index does not depend on the file's row order.
    experiments.sort(key=lambda e: (e.test_week, e.test_id))
    if report.dropped_experiments:
        logger.warning("Upworthy loader dropped experiments: %s", report.summary())
    return tuple(experiments), report


def _check_merge(merge_identical) -> tuple[str, ...] | None:
    if merge_identical is None or merge_identical is False:
        return None
    fields = (merge_identical,) if isinstance(merge_identical, str) else tuple(merge_identical)
    allowed = TEXT_FIELDS + ("eyecatcher_id",)
    unknown = [f for f in fields if f not in allowed]
    if unknown or not fields:
        raise ValueError(
            f"merge_identical must be None or a tuple of fields from {list(allowed)}, got {merge_identical!r}"
        )
    return fields


def load_dataset(
    path=None,
    *,
    split: str = "all",
    split_by: str = "hash",
    test_fraction: float = 0.2,
    min_arms: int = 2,
    merge_identical: Iterable[str] | None = None,
) -> tuple[list[Experiment], LoadReport]:
    """:func:`load_experiments` together with the :class:`LoadReport` (rows and experiments dropped, by reason)."""
    if int(min_arms) != min_arms or min_arms < 1:
        raise ValueError(f"min_arms must be a positive whole number, got {min_arms!r}")
    key = _file_key(path)
    experiments, report = _experiments_cached(key, _check_merge(merge_identical), int(min_arms))
    split_list = split_experiments(
        experiments, split, split_by, test_fraction, tests_per_week=_tests_per_week(key) if split_by == "week" else None
    )
    return split_list, _copy_report(report)


@functools.lru_cache(maxsize=8)
def _tests_per_week(key: tuple[str, int, int]) -> dict[int, int]:
    df, _ = _load_packages_cached(*key)
    return df.groupby("test_week")["clickability_test_id"].nunique().to_dict()


def load_experiments(
    path=None,
    *,
    split: str = "all",
    split_by: str = "hash",
    test_fraction: float = 0.2,
    min_arms: int = 2,
    merge_identical: Iterable[str] | None = None,
) -> list[Experiment]:
    """The experiments of a package file, one :class:`Experiment` per test, in a fixed order (week, then test id).

    ``merge_identical=None`` keeps every package as an arm: packages that share a headline but differ by image are
    different treatments. ``merge_identical=("headline",)`` merges the arms whose text in those fields is identical
    (impressions, clicks summed; the editors' pick if any was picked), as a text model needs. Experiments left with
    fewer than ``min_arms`` arms are dropped and counted (see :func:`load_dataset`).
    """
    experiments, _ = load_dataset(
        path, split=split, split_by=split_by, test_fraction=test_fraction, min_arms=min_arms,
        merge_identical=merge_identical,
    )
    return experiments
