import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread: these small models are fastest that way on the shared, oversubscribed CI box."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
