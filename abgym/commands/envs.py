"""``abgym envs``: list the registered environment ids."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("envs", help="list the registered environment ids")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from abgym.envs.registration import env_ids

    for env_id in env_ids():
        print(env_id)
    return 0
