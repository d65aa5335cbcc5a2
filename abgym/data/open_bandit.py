"""The Open Bandit Dataset (ZOZOTOWN fashion e-commerce): validated logged bandit feedback with propensities.

The dataset (Saito, Aihara, Matsutani and Narita, "Open Bandit Dataset and Pipeline", NeurIPS 2021 Datasets and
Benchmarks; CC BY 4.0) logs which fashion item ZOZOTOWN showed at which of three positions, whether the user
clicked, and the probability the logging policy gave that item at that position. Two logging policies ran on the
same site: uniform random and Bernoulli Thompson sampling (BTS); three campaigns: ``all`` (80 items), ``men`` (34)
and ``women`` (46). Because the same traffic was served by both policies, a policy's value can be estimated
off-policy from one log and checked against the other policy's on-policy click rate.

abgym does not ship the data. A 10,000-impression sample of every log is inside the PyPI wheel ``obp==0.4.1``
(``pip install --no-deps obp==0.4.1``, done by the Makefile); :func:`bundled_path` finds it with
``importlib.util.find_spec`` without importing obp (whose import needs packages abgym does not). The full dataset
(about 26 million impressions) has the same layout, ``<root>/<policy>/<campaign>/<campaign>.csv`` and
``item_context.csv``: pass its root as ``data_path``.

The loader is strict: a missing column, an item id outside the item table, a position other than 1-3, a click
other than 0/1, a propensity outside (0, 1] or a missing value raise :class:`OpenBanditFormatError` naming the
file, the data row (1-based, as a spreadsheet shows it below the header) and the column.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "BEHAVIOR_POLICIES",
    "CAMPAIGNS",
    "LEN_LIST",
    "LoggedBanditFeedback",
    "OpenBanditFormatError",
    "bundled_path",
    "load_bts_prior",
    "load_open_bandit",
]

BEHAVIOR_POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
LEN_LIST = 3  # ZOZOTOWN shows three items per impression
INSTALL_HINT = "pip install --no-deps obp==0.4.1 (the Makefile does this), or pass data_path=<the full dataset's root>"
LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")
USER_FEATURE_PREFIX = "user_feature_"
AFFINITY_PREFIX = "user-item_affinity_"


class OpenBanditFormatError(ValueError):
    """An OBD file that does not follow the dataset's layout. The message names file, row and column, and the fix."""

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


@dataclass(frozen=True)
class LoggedBanditFeedback:
    """One log, in time order: row ``i`` showed item ``action[i]`` at ``position[i]`` and got ``reward[i]``.

    ``pscore[i]`` is the logging policy's probability of that item at that position. ``context`` is the one-hot
    user features (one column per category seen in the file, in sorted order; ``user_categories`` lists them),
    ``affinity`` the per-item user-item affinities, ``item_features`` the item table (one row per item id).
    """

    action: np.ndarray          # int64 (n,), item ids 0..n_actions-1
    position: np.ndarray        # int64 (n,), 0-based (the files count from 1)
    reward: np.ndarray          # int64 (n,), click 0/1
    pscore: np.ndarray          # float64 (n,)
    context: np.ndarray         # float64 (n, n_user_columns), one-hot user features
    affinity: np.ndarray        # float64 (n, n_actions)
    item_features: np.ndarray   # float64 (n_actions, n_item_columns): item_feature_0 and label-encoded categories
    timestamp: np.ndarray       # datetime64[ns] (n,)
    n_actions: int
    len_list: int = LEN_LIST
    behavior_policy: str = ""
    campaign: str = ""
    source: str = ""
    user_categories: tuple = field(default=())

    @property
    def n_rounds(self) -> int:
        return int(self.action.size)

    @property
    def clicks(self) -> int:
        return int(self.reward.sum())

    def subset(self, index) -> "LoggedBanditFeedback":
        """The rows ``index`` (a slice, boolean mask or integer array), everything else shared."""
        take = dict(action=self.action[index], position=self.position[index], reward=self.reward[index],
                    pscore=self.pscore[index], context=self.context[index], affinity=self.affinity[index],
                    timestamp=self.timestamp[index])
        return LoggedBanditFeedback(**take, item_features=self.item_features, n_actions=self.n_actions,
                                    len_list=self.len_list, behavior_policy=self.behavior_policy,
                                    campaign=self.campaign, source=self.source, user_categories=self.user_categories)

    def split_by_time(self, test_fraction: float = 0.3) -> tuple["LoggedBanditFeedback", "LoggedBanditFeedback"]:
        """(earlier rows, later rows): train on the past, evaluate on the future, as OBD's authors do."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        cut = int(round(self.n_rounds * (1.0 - test_fraction)))
        return self.subset(slice(0, cut)), self.subset(slice(cut, None))


def bundled_path() -> Path:
    """The root of the OBD sample inside the installed ``obp`` wheel (found without importing obp)."""
    spec = importlib.util.find_spec("obp")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the Open Bandit Dataset sample is not installed: {INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0]) / "dataset" / "obd"
    if not root.is_dir():
        raise ValueError(f"the installed obp package has no dataset folder at {root}: {INSTALL_HINT}")
    return root


def load_bts_prior(campaign: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """The Beta prior (alpha, beta per item) of ZOZOTOWN's production BTS policy, as its authors ship it.

    Read from ``obp/policy/conf/prior_bts.yaml`` in the same wheel; these are the parameters the BTS logging policy
    sampled from while it collected the ``bts`` logs.
    """
    import yaml

    _check_choice("campaign", campaign, CAMPAIGNS)
    path = bundled_path().parents[1] / "policy" / "conf" / "prior_bts.yaml"
    if not path.is_file():
        raise ValueError(f"no BTS prior file at {path}: {INSTALL_HINT}")
    with open(path, "rb") as handle:
        prior = yaml.safe_load(handle)
    if campaign not in prior or not {"alpha", "beta"} <= set(prior[campaign]):
        raise ValueError(f"{path}: no alpha/beta for campaign {campaign!r}; reinstall obp==0.4.1")
    alpha, beta = (np.asarray(prior[campaign][key], dtype=np.float64) for key in ("alpha", "beta"))
    if alpha.shape != beta.shape or np.any(alpha <= 0) or np.any(beta <= 0):
        raise ValueError(f"{path}: campaign {campaign!r} prior must be positive and of equal length")
    return alpha, beta


def load_open_bandit(behavior_policy: str = "random", campaign: str = "all",
                     data_path: str | Path | None = None) -> LoggedBanditFeedback:
    """Load and validate one OBD log (``behavior_policy`` "random" or "bts", ``campaign`` "all", "men", "women").

    ``data_path``: the dataset's root (holding ``random/`` and ``bts/``); default the sample bundled in obp.
    Rows are sorted by timestamp, as OBD's own pipeline does.
    """
    _check_choice("behavior_policy", behavior_policy, BEHAVIOR_POLICIES)
    _check_choice("campaign", campaign, CAMPAIGNS)
    root = bundled_path() if data_path is None else Path(data_path).expanduser()
    if not root.is_dir():
        raise ValueError(f"data_path {root} is not a folder; pass the dataset's root, the folder that holds "
                         f"random/ and bts/")
    folder = root / behavior_policy / campaign
    log_path, item_path = folder / f"{campaign}.csv", folder / "item_context.csv"
    for path in (log_path, item_path):
        if not path.is_file():
            raise ValueError(f"missing file {path}; the layout is <root>/<policy>/<campaign>/<campaign>.csv and "
                             f"item_context.csv (as in the Open Bandit Dataset)")
    items = _read_csv(item_path)
    item_features = _item_features(items, item_path)
    n_actions = item_features.shape[0]
    log = _read_csv(log_path)
    _require_columns(log, log_path, LOG_COLUMNS)
    user_columns = sorted((c for c in log.columns if c.startswith(USER_FEATURE_PREFIX)),
                          key=lambda c: int(c[len(USER_FEATURE_PREFIX):]) if c[len(USER_FEATURE_PREFIX):].isdigit() else c)
    if not user_columns:
        raise OpenBanditFormatError(log_path, f"no {USER_FEATURE_PREFIX}* columns", fix="use the dataset's own CSV")
    affinity_columns = [f"{AFFINITY_PREFIX}{k}" for k in range(n_actions)]
    _require_columns(log, log_path, affinity_columns,
                     fix=f"the log needs one affinity column per item of {item_path.name} ({n_actions} items)")

    action = _integer_column(log, "item_id", log_path, low=0, high=n_actions - 1)
    position = _integer_column(log, "position", log_path, low=1, high=LEN_LIST) - 1
    reward = _integer_column(log, "click", log_path, low=0, high=1)
    pscore = _float_column(log, "propensity_score", log_path)
    bad = np.flatnonzero(~((pscore > 0) & (pscore <= 1)))
    if bad.size:
        raise OpenBanditFormatError(log_path, f"propensity {pscore[bad[0]]} is not in (0, 1]", row=int(bad[0]) + 1,
                                    column="propensity_score", fix="the logging policy's probability of the shown item")
    affinity = np.column_stack([_float_column(log, column, log_path) for column in affinity_columns])
    for column in user_columns:
        missing = np.flatnonzero(log[column].isna().to_numpy())
        if missing.size:
            raise OpenBanditFormatError(log_path, "missing user feature", row=int(missing[0]) + 1, column=column)
    timestamp = pd.to_datetime(log["timestamp"], errors="coerce", utc=True)
    if timestamp.isna().any():
        row = int(np.flatnonzero(timestamp.isna().to_numpy())[0])
        raise OpenBanditFormatError(log_path, f"not a timestamp: {log['timestamp'].iloc[row]!r}", row=row + 1,
                                    column="timestamp", fix="ISO 8601, e.g. 2019-11-24 00:00:34+00:00")
    order = np.argsort(timestamp.to_numpy(), kind="stable")
    users = log[user_columns].astype(str)
    categories = tuple(tuple(sorted(users[column].unique())) for column in user_columns)
    context = np.concatenate([(users[column].to_numpy()[:, None] == np.asarray(cats)[None, :]).astype(np.float64)
                              for column, cats in zip(user_columns, categories)], axis=1)
    return LoggedBanditFeedback(
        action=action[order], position=position[order], reward=reward[order], pscore=pscore[order],
        context=context[order], affinity=affinity[order], item_features=item_features,
        timestamp=timestamp.dt.tz_convert(None).to_numpy()[order], n_actions=n_actions, len_list=LEN_LIST,
        behavior_policy=behavior_policy, campaign=campaign, source=str(log_path), user_categories=categories)


# -- validation helpers -----------------------------------------------------------------------------------------------
def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, index_col=0)
    except pd.errors.EmptyDataError:
        raise OpenBanditFormatError(path, "the file is empty", fix="use the dataset's own CSV with its header row")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise OpenBanditFormatError(path, f"not a well-formed CSV ({error})", fix="use the dataset's own CSV")
    if frame.empty:
        raise OpenBanditFormatError(path, "no data rows", fix="use the dataset's own CSV")
    return frame


def _require_columns(frame: pd.DataFrame, path: Path, columns, fix: str = "use the dataset's own CSV") -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise OpenBanditFormatError(path, f"missing column(s) {shown}", column=missing[0], fix=fix)


def _float_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise OpenBanditFormatError(path, f"not a number: {frame[column].iloc[bad[0]]!r}", row=int(bad[0]) + 1,
                                    column=column)
    return values


def _integer_column(frame: pd.DataFrame, column: str, path: Path, low: int, high: int) -> np.ndarray:
    values = _float_column(frame, column, path)
    bad = np.flatnonzero((values != np.round(values)) | (values < low) | (values > high))
    if bad.size:
        raise OpenBanditFormatError(path, f"{frame[column].iloc[bad[0]]!r} is not an integer in [{low}, {high}]",
                                    row=int(bad[0]) + 1, column=column)
    return values.astype(np.int64)


def _item_features(items: pd.DataFrame, path: Path) -> np.ndarray:
    """``item_feature_0`` (numeric) and the other item features label-encoded, one row per item id 0..n-1."""
    _require_columns(items, path, ("item_id", "item_feature_0"))
    item_id = _integer_column(items, "item_id", path, low=0, high=len(items) - 1)
    if np.unique(item_id).size != item_id.size:
        row = int(np.flatnonzero(pd.Series(item_id).duplicated().to_numpy())[0])
        raise OpenBanditFormatError(path, f"item id {item_id[row]} appears twice", row=row + 1, column="item_id",
                                    fix="one row per item, ids 0..n_items-1")
    numeric = _float_column(items, "item_feature_0", path)
    categorical = [c for c in items.columns if c.startswith("item_feature_") and c != "item_feature_0"]
    encoded = [pd.factorize(items[c].astype(str), sort=True)[0].astype(np.float64) for c in categorical]
    features = np.column_stack([numeric, *encoded])
    return features[np.argsort(item_id)]
