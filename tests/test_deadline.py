import pytest

from handler.deadline import FIRST_ESTIMATE_MS, TimeBudget
from handler.errors import OutOfTime


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_no_context_means_no_deadline():
    TimeBudget().ensure_time_for_one(None, "normal")


def test_first_estimate_is_per_speed_then_learned():
    budget = TimeBudget(margin_ms=100)
    assert budget.estimate_ms("rapid") == FIRST_ESTIMATE_MS["rapid"]
    budget.record(250.0)
    budget.record(400.0)
    budget.record(300.0)
    assert budget.estimate_ms("rapid") == 400.0  # the slowest recent image
    budget.ensure_time_for_one(Context(501), "rapid")
    with pytest.raises(OutOfTime, match="499 ms remain"):
        budget.ensure_time_for_one(Context(499), "rapid")


def test_out_of_time_is_a_503_with_a_message():
    with pytest.raises(OutOfTime) as caught:
        TimeBudget().ensure_time_for_one(Context(10), "normal")
    assert caught.value.status == 503 and "retry" in caught.value.message
