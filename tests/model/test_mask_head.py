"""The mask head's speed-ups that keep the same bits: objects refined a batch at a time, features channels-last."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import IMAGES

from handler.engine import images


def test_bilinear_sampling_reads_the_same_values_from_channels_last_features():
    features = torch.randn(1, 256, 50, 84)
    points = torch.rand(1, 1, 5000, 2) * 2 - 1
    plain = F.grid_sample(features, points, align_corners=False)
    last = F.grid_sample(features.contiguous(memory_format=torch.channels_last), points, align_corners=False)
    assert torch.equal(plain, last)


@pytest.mark.timeout(600)
def test_objects_refined_in_batches_give_the_masks_of_one_batch(dense_segmenter, monkeypatch):
    rgb = images.decode((IMAGES / "astronaut.jpg").read_bytes(), max_bytes=10**7, max_pixels=10**7)
    head = dense_segmenter.model.roi_heads.mask_head
    batched = dense_segmenter.detect(rgb, 0.5, "rapid")
    assert len(batched) > head.objects_per_batch  # several batches
    monkeypatch.setattr(head, "objects_per_batch", 1000)
    whole = dense_segmenter.detect(rgb, 0.5, "rapid")
    np.testing.assert_array_equal(batched.boxes, whole.boxes)
    assert torch.allclose(batched.roi_masks, whole.roi_masks, rtol=0, atol=1e-6)
