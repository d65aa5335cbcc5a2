"""Shared test settings: no test may reach a model hub."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def sb3_log_folder(tmp_path_factory):
    """SB3 makes a new empty /tmp/SB3-<time> folder at every learn() that has no log folder: they go to one folder of
    pytest's (kept for the last three runs) instead of piling up in /tmp."""
    before = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3"))
    yield
    if before is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = before


@pytest.fixture
def one_torch_thread():
    """Small networks train faster and reproducibly on one thread on the 2-core machines; restores the setting."""
    import torch  # here, so that collecting tests that need no torch stays fast

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance for the whole session (tests/test_parallel.py, test_rllib.py, test_tune_sweep.py), on
    the 2 cores of the development machine, shut down at the end: starting one costs 7-11 s here.

    Started by abgym's own default with RAY_ADDRESS pointing nowhere: the local backend must start its own
    instance, not join (or hang on) a cluster that the environment or an old `ray start` names."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'abgym[ray]'")
    from abgym.parallel import init_ray

    before = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = "127.0.0.1:9"  # nothing listens there
    try:
        init_ray(num_cpus=2)
    finally:
        if before is None:
            del os.environ["RAY_ADDRESS"]
        else:
            os.environ["RAY_ADDRESS"] = before
    yield ray
    ray.shutdown()
