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


class Recording(roi_align_module.ThreadedROIAlign):
    """Notes the thread that pools each share of the boxes."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.threads: list[str] = []

    def pool(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        self.threads.append(threading.current_thread().name)
        return super().pool(features, rois)


@pytest.mark.parametrize("count", [0, 1, 15, 16, 17, 1000])
def test_pooled_features_are_the_single_threaded_ones(count, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    features = torch.randn(1, 256, 50, 84)
    rois = boxes(count, 50, 84)
    stock = ROIAlign((7, 7), 0.25, 0, aligned=True)
    single = stock(features, rois)
    layer = Recording.of(stock)
    assert repr(layer) == repr(stock).replace("ROIAlign", "Recording")  # the same settings
    with torch.inference_mode():
        threaded = layer(features, rois)
    assert torch.equal(threaded, single)
    split = count >= 2 * roi_align_module.MIN_BOXES_PER_THREAD
    assert len(layer.threads) == (2 if split else 1)
    assert any(name.startswith("roi-align") for name in layer.threads) == split
