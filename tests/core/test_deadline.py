import pytest

from handler.core.deadline import (
    FORWARD_MS,
    MAX_OBJECTS,
    PER_MEGAPIXEL_MS,
    PER_OBJECT_MEGAPIXEL_MS,
    PER_OBJECT_MS,
    TimeBudget,
    reference_ms,
)
from handler.core.errors import OutOfTime

MP_48 = 8064 * 6048 / 1e6


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_no_context_means_no_deadline():
    TimeBudget().ensure_time_for_one(None, "normal", MP_48)


def test_estimate_scales_with_megapixels_speed_and_worst_case_objects():
    budget = TimeBudget()
    small, large = budget.estimate_ms("rapid", 0.1), budget.estimate_ms("rapid", MP_48)
    assert large - small == pytest.approx(PER_MEGAPIXEL_MS * (MP_48 - 0.1))
    assert (
        budget.estimate_ms("normal", 1.0) - budget.estimate_ms("rapid", 1.0)
        == FORWARD_MS["normal"] - FORWARD_MS["rapid"]
    )
    assert budget.estimate_ms("fast", 1.0) == FORWARD_MS["fast"] + PER_OBJECT_MS * MAX_OBJECTS + PER_MEGAPIXEL_MS


def test_a_48_mp_image_after_many_small_rapid_ones_is_refused():
    budget = TimeBudget(margin_ms=1500)
    for _ in range(50):  # small photos at rapid speed, each well inside the reference cost
        budget.record(300.0, "rapid", 0.3, 2)
    budget.ensure_time_for_one(Context(20_000), "rapid", 0.3)
    with pytest.raises(OutOfTime, match=r"48\.8 MP at rapid speed"):
        budget.ensure_time_for_one(Context(20_000), "rapid", MP_48)
    with pytest.raises(OutOfTime):
        budget.ensure_time_for_one(Context(27_000), "normal", MP_48)


def test_images_slower_than_the_reference_scale_every_estimate_up_never_down():
    budget = TimeBudget(margin_ms=0)
    before = budget.estimate_ms("normal", 12.0)
    budget.record(100.0, "rapid", 0.1, 0)  # faster than the reference: no change
    assert budget.estimate_ms("normal", 12.0) == before
    budget.record(2 * reference_ms("fast", 2.0, 10), "fast", 2.0, 10)  # twice as slow (a loaded machine)
    assert budget.estimate_ms("normal", 12.0) == pytest.approx(2 * before)
    budget.ensure_time_for_one(Context(int(2 * before) + 1), "normal", 12.0)
    with pytest.raises(OutOfTime, match=r"\d+ ms remain"):
        budget.ensure_time_for_one(Context(int(2 * before) - 1), "normal", 12.0)
    for _ in range(20):  # the window forgets it
        budget.record(100.0, "rapid", 0.1, 0)
    assert budget.estimate_ms("normal", 12.0) == before


def test_out_of_time_is_a_503_with_a_message():
    with pytest.raises(OutOfTime) as caught:
        TimeBudget().ensure_time_for_one(Context(10), "normal", 1.0)
    assert caught.value.status == 503 and "retry" in caught.value.message


def test_each_objects_mask_needs_time_for_its_box():
    budget = TimeBudget(margin_ms=1500)
    budget.ensure_time_for_object(None, MP_48, 3, 80)  # no deadline outside Lambda
    needed = PER_OBJECT_MEGAPIXEL_MS * MP_48 + 1500
    budget.ensure_time_for_object(Context(int(needed) + 1), MP_48, 3, 80)
    budget.ensure_time_for_object(Context(1600), 0.01, 3, 80)  # a small box needs little more than the margin
    with pytest.raises(
        OutOfTime, match=r"to finish the masks: \d+ ms remain after 3 of 80 objects \(the next box is 48\.8 MP\)"
    ):
        budget.ensure_time_for_object(Context(int(needed) - 1), MP_48, 3, 80)
    budget.record(2 * reference_ms("normal", 1.0, 5), "normal", 1.0, 5)  # a slow machine: twice the time per box
    with pytest.raises(OutOfTime):
        budget.ensure_time_for_object(Context(int(needed) + 1), MP_48, 3, 80)


def test_what_the_objects_took_so_far_raises_the_cost_of_the_next():
    budget = TimeBudget(margin_ms=1500)
    reference_needed = PER_OBJECT_MEGAPIXEL_MS * 10 + 1500
    budget.ensure_time_for_object(Context(int(reference_needed) + 1), 10.0, 1, 80, observed_ms_per_megapixel=5.0)
    with pytest.raises(OutOfTime, match="after 1 of 80 objects"):  # this request's objects ran at 100 ms/MP
        budget.ensure_time_for_object(Context(int(reference_needed) + 1), 10.0, 1, 80, observed_ms_per_megapixel=100.0)


def test_empty_and_tiny_boxes_do_not_read_as_a_huge_rate_per_megapixel():
    """An empty box's mask takes a few ms for no area: the next, 1 MP box must not be priced at that rate."""
    import time

    import numpy as np

    from handler.engine import pipeline
    from handler.model import MaskCrop

    class Found:
        boxes = np.array([[5, 5, 5, 5], [0, 0, 0.01, 0.01], [0, 0, 1000, 1000]], dtype=np.float32)

        def masks(self, indices):
            for _ in indices:
                time.sleep(0.005)
                yield MaskCrop(top=0, left=0, mask=np.zeros((1, 1), dtype=bool))

    assert len(list(pipeline._masks_in_time(Found(), [0, 1, 2], Context(600_000)))) == 3
