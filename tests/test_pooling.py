"""nasframe.core.pooling.AvgPool2d computes what nn.AvgPool2d computes (outputs and input gradients)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from nasframe.core.pooling import AvgPool2d

SETTINGS = [(3, 1, 1), (3, 2, 1), (2, 2, 0), (5, 3, 0), (3, 1, 0)]  # (kernel, stride, padding)
SHAPES = [(4, 8, 32, 32), (3, 5, 7, 9), (2, 4, 2, 3)]


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("kernel, stride, padding", SETTINGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_same_outputs_and_gradients_as_torch(shape, kernel, stride, padding, count_include_pad):
    if min(shape[-2:]) + 2 * padding < kernel:
        pytest.skip("window larger than the padded input")
    torch.manual_seed(0)
    reference = nn.AvgPool2d(kernel, stride, padding, count_include_pad=count_include_pad)
    fast = AvgPool2d(kernel, stride, padding, count_include_pad=count_include_pad)
    assert fast._fast_path_applies(torch.zeros(shape))  # the shifted-sum path is what is tested
    x = torch.randn(*shape, requires_grad=True)
    y = x.detach().clone().requires_grad_()
    expected, got = reference(x), fast(y)
    grad = torch.randn_like(expected)
    expected.backward(grad)
    got.backward(grad)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(y.grad, x.grad, atol=1e-6, rtol=1e-6)


def test_options_the_fast_path_does_not_express_use_torch():
    x = torch.randn(2, 3, 7, 7)
    for pool in (AvgPool2d(3, 2, 1, ceil_mode=True), AvgPool2d(3, 1, 1, divisor_override=4)):
        assert not pool._fast_path_applies(x)
        torch.testing.assert_close(pool(x), nn.functional.avg_pool2d(
            x, 3, pool.stride, 1, pool.ceil_mode, pool.count_include_pad, pool.divisor_override))
    bf16 = x.to(torch.bfloat16)
    pool = AvgPool2d(3, 1, 1, count_include_pad=False)
    assert not pool._fast_path_applies(bf16)
    torch.testing.assert_close(pool(bf16), nn.AvgPool2d(3, 1, 1, count_include_pad=False)(bf16))


def test_no_state_and_copies_drop_the_divisor_cache():
    pool = AvgPool2d(3, 1, 1, count_include_pad=False)
    pool(torch.randn(1, 2, 5, 5))
    assert pool._divisors and pool.state_dict() == {}
    assert copy.deepcopy(pool)._divisors == {} and pickle.loads(pickle.dumps(pool))._divisors == {}
    assert isinstance(pool, nn.AvgPool2d)


def test_the_result_does_not_depend_on_the_batch_size():
    """Data-parallel ranks pool slices of the batch: each slice must give exactly the rows of the whole."""
    pool = AvgPool2d(3, 1, 1, count_include_pad=False)
    x = torch.randn(64, 16, 32, 32)
    whole = pool(x)
    assert torch.equal(pool(x[:32]), whole[:32]) and torch.equal(pool(x[32:]), whole[32:])
