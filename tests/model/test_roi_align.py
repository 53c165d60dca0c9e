"""ROIAlign across torch's threads gives stock's pooled features, bit for bit."""

from __future__ import annotations

import importlib
import threading

import pytest
import torch

from handler.model.pixellib import ROIAlign

roi_align_module = importlib.import_module("handler.model.roi_align")


def boxes(count: int, height: int, width: int) -> torch.Tensor:
    corner = torch.rand(count, 2) * torch.tensor([width * 3.0, height * 3.0])
    size = torch.rand(count, 2) * 200 + 1
    return torch.cat([torch.zeros(count, 1), corner, corner + size], dim=1)  # image coordinates (scale 1/4)


@pytest.mark.parametrize("count", [0, 1, 15, 16, 17, 1000])
def test_pooled_features_are_the_single_threaded_ones(count, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    features = torch.randn(1, 256, 50, 84)
    rois = boxes(count, 50, 84)
    layer = ROIAlign((7, 7), 0.25, 0, aligned=True)
    single = layer(features, rois)
    threads: list[str] = []
    original = layer.forward

    def recording(*args):
        threads.append(threading.current_thread().name)
        return original(*args)

    layer.forward = recording
    assert roi_align_module.threaded_roi_align(torch.nn.Sequential(layer)) == 1
    with torch.inference_mode():
        threaded = layer(features, rois)
    assert torch.equal(threaded, single)
    split = count >= 2 * roi_align_module.MIN_BOXES_PER_THREAD
    assert len(threads) == (2 if split else 1)
    assert any(name.startswith("roi-align") for name in threads) == split
