"""FuseConvBatchNormPass: op counts before/after, `modified` accuracy, numerics, the model untouched."""
from __future__ import annotations

import torch

from fx2nnef.compiler.pass_base import count_ops
from fx2nnef.passes import FuseConvBatchNormPass
from testing_utils import assert_same_numerics, captured


def conv_bn(bias: bool, dims: int = 2) -> torch.nn.Module:
    """Return conv -> batch norm -> relu with non-trivial statistics, in eval mode."""
    conv = (torch.nn.Conv1d, torch.nn.Conv2d)[dims - 1](3, 4, 3, bias=bias)
    norm = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)[dims - 1](4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
    return torch.nn.Sequential(conv, norm, torch.nn.ReLU()).eval()


def test_batch_norm_is_folded_into_the_convolution():
    for bias, dims in ((False, 2), (True, 2), (True, 1)):
        torch.manual_seed(0)
        model, x = conv_bn(bias, dims), torch.randn(2, 3, *[9] * dims)
        originals = {k: v.clone() for k, v in model.state_dict().items()}
        result = FuseConvBatchNormPass()(captured(model, x))
        ops = count_ops(result.program)
        assert result.modified and not any("batch_norm" in op for op in ops) and ops["aten::convolution"] == 1
        assert_same_numerics(captured(model, x), result.program, x, atol=1e-5)
        assert all(torch.equal(v, originals[k]) for k, v in model.state_dict().items())


def test_convolution_read_elsewhere_is_not_fused():
    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = conv_bn(True)

        def forward(self, x):
            y = self.block[0](x)
            return self.block[1](y), y

    model, x = Both().eval(), torch.randn(2, 3, 9, 9)
    result = FuseConvBatchNormPass()(captured(model, x))
    assert not result.modified
    assert any("batch_norm" in op for op in count_ops(result.program))
