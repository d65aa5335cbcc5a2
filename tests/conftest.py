"""Shared test settings: no test may reach a model hub."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")



@pytest.fixture
def one_torch_thread():
    """Small networks train faster and reproducibly on one thread on the 2-core machines; restores the setting."""
    import torch  # here, so that collecting tests that need no torch stays fast

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
