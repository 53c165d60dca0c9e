"""handler.snapstart in this process: what the after-restore hook renews, and that an on-demand init
registers nothing. The whole lifecycle under the real runtime client: tests/system/test_snapstart.py."""

from __future__ import annotations

import random

import boto3
import numpy as np
import pytest
import torch
from snapshot_restore_py import get_after_restore, get_before_snapshot

from handler import snapstart
from handler.core import storage
from handler.core.deadline import time_budget


def test_an_on_demand_init_registers_no_hook(lambda_handler, monkeypatch):
    # lambda_handler: handler.lambda_function was imported (the init) without AWS_LAMBDA_INITIALIZATION_TYPE.
    assert get_before_snapshot() == [] and get_after_restore() == []
    monkeypatch.setenv(snapstart.INIT_TYPE, "on-demand")
    assert snapstart.register([]) is False
    assert get_before_snapshot() == [] and get_after_restore() == []


def test_renew_replaces_clients_session_seeds_and_time_budget(moto_endpoint, monkeypatch):
    client, session = storage.s3_client(), boto3.DEFAULT_SESSION
    signing = storage.signing_client()
    origin = storage.bucket_origin("some-bucket")
    time_budget.record(99_999.0, "normal", 1.0, 1)  # far slower than the reference: as a snapshot's first run
    random.seed(1), np.random.seed(1), torch.manual_seed(1)  # as a seed set during the init would be
    states = random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    # Earlier tests in this process may have cached signing clients of other endpoints: all of them go.
    cached = storage.s3_client.cache_info().currsize, storage._signing_client.cache_info().currsize
    assert cached[0] >= 1 and cached[1] >= 1

    details = snapstart.renew()

    assert storage.s3_client() is not client and storage.signing_client() is not signing
    assert boto3.DEFAULT_SESSION is not session
    assert storage.bucket_origin("some-bucket") == origin  # the same origin, signed again by the new client
    assert (details["s3_clients_dropped"], details["signing_clients_dropped"]) == cached
    assert time_budget.slowdown() == 1.0  # back to the reference, as before any image
    assert random.getstate() != states[0]
    assert not np.array_equal(np.random.get_state()[1], states[1])
    assert not torch.equal(torch.random.get_rng_state(), states[2])


def test_a_failing_hook_is_logged_as_a_structured_error_and_raised(caplog):
    def renew_credentials() -> None:
        raise RuntimeError("credentials endpoint unreachable")

    with pytest.raises(RuntimeError, match="unreachable"):
        snapstart.hooked("after_restore", renew_credentials)()
    (record,) = [record for record in caplog.records if record.getMessage() == "snapstart hook failed"]
    assert record.levelname == "ERROR" and record.phase == "after_restore" and record.hook == "renew_credentials"
    assert record.exc_info and record.exc_info[0] is RuntimeError


@pytest.mark.parametrize("speed", ["rapid", "fast"])
def test_priming_runs_the_whole_model_at_the_configured_speed(segmenter, settings, monkeypatch, speed):
    """What the snapshot must hold warm: one forward at the input size the function's speed gives, through
    the mask head (a synthetic photo only reaches it at confidence 0), seen from inside the model."""
    from handler.model.pixellib import SPEED_SIZES

    monkeypatch.setattr(settings, "detection_speed", speed)
    inputs: list[tuple[int, ...]] = []
    mask_head_calls: list[str] = []
    model = segmenter.model
    hooks = [model.backbone.register_forward_pre_hook(lambda _, args: inputs.append(tuple(args[0].shape)))]
    hooks += [
        module.register_forward_hook(lambda module, *_: mask_head_calls.append(type(module).__name__))
        for module in model.roi_heads.mask_head.modules()
    ]
    try:
        timings = snapstart.prime_model()["prime_ms"]
    finally:
        for hook in hooks:
            hook.remove()

    assert list(timings) == [speed]
    (shape,) = inputs  # one forward, at this speed only
    side = SPEED_SIZES[speed][0]  # the square priming photo: both sides are the shorter side's size
    assert shape[-2] == shape[-1] and side <= shape[-1] < side + 32  # padded to the backbone's stride
    assert mask_head_calls, "priming never reached the mask head"
