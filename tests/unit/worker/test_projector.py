from __future__ import annotations

import pytest
import torch

from service.worker.projector import Projector


def test_soft_token_is_the_sum_of_projected_items() -> None:
    g = torch.Generator().manual_seed(0)
    proj = Projector(torch.randn(8, 4, generator=g), torch.randn(8, generator=g))
    feats = [torch.randn(4, generator=g) for _ in range(3)]
    expected = sum(proj.weight @ f + proj.bias for f in feats)
    torch.testing.assert_close(proj.soft_token(feats), expected)
    assert proj.soft_token([]) is None


def test_feature_size_is_checked() -> None:
    proj = Projector(torch.zeros(8, 4), torch.zeros(8))
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        proj.project(torch.zeros(1, 5))
    with pytest.raises(ValueError):
        Projector(torch.zeros(8, 4), torch.zeros(7))
