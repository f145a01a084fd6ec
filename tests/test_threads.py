"""Thread counts: the kernels split work by the number of threads, so every
split must be right, and results must not depend on scheduling."""
import pytest
import torch

import convext
from conftest import ConvCase, assert_close_to_torch, case_id, conv_and_grads


@pytest.fixture
def num_threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("num_threads", [1, 3, 6], indirect=True)
@pytest.mark.parametrize("case", [
    ConvCase(2, 2, 24, 20, (14, 13), (3, 3), stride=(1, 2), padding=1),
    ConvCase(2, 3, 2, 3, (33, 31), (3, 2), padding=1),                      # split reduction
    ConvCase(2, 2, 6, 12, (12, 11), (3, 3), stride=2, padding=1, groups=6),
    ConvCase(1, 2, 4, 6, (700,), (7,), stride=3, padding=3, groups=2),
], ids=case_id)
def test_thread_counts(case, num_threads):
    """The work split depends on the thread count; every split is right."""
    assert_close_to_torch(case.dims, *case.make(torch.float32), **case.conv_kwargs)


@pytest.mark.parametrize("groups", [1, 4])
def test_repeated_calls_are_bitwise_identical(groups):
    """The reduction order does not depend on thread scheduling."""
    case = ConvCase(2, 3, 4, 8, (31, 29), (3, 3), padding=1, groups=groups)
    x, w, b = case.make(torch.float32)
    first = None
    for _ in range(3):
        out, grads, _ = conv_and_grads(convext.conv2d, x, w, b, torch.ones_like,
                                       **case.conv_kwargs)
        results = [out] + grads
        if first is None:
            first = results
        for a, c in zip(results, first):
            assert torch.equal(a, c)
