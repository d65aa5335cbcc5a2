"""One way to pass an environment's settings: keyword arguments, ``config={...}``, or both.

Every abgym env takes ``gymnasium.make(id, key=value)`` and ``gymnasium.make(id, config={"key": value})`` alike
(keywords win where both name a key), and answers an unknown key with the same ``ValueError``, naming the key, the
closest known one and where the full list is.
"""
from __future__ import annotations

import difflib


def merge_settings(env_name: str, defaults: dict, config: dict | None = None, settings: dict | None = None, *,
                   see: str) -> dict:
    """``defaults`` updated with ``config`` and then ``settings``; an unknown key raises ``ValueError``.

    ``see`` names where the user finds every setting (for example the env's ``default_config()``).
    """
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"config must be a dict of settings for {env_name}, got {type(config).__name__}")
    given = {**(config or {}), **(settings or {})}
    for key in given:
        if key not in defaults:
            close = difflib.get_close_matches(str(key), [str(k) for k in defaults], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown setting {key!r} for {env_name}{hint} (see {see} for all of them)")
    return {**defaults, **given}
