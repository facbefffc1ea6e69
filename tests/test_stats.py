"""Step-duration percentiles from a flow's histogram (the dashboard's p50 / p95):
interpolated within the bucket the rank falls in, as Prometheus' histogram_quantile
does; none without durations; the open last bucket answers its lower bound."""

from __future__ import annotations

import pytest

from flowqueue.backend.store import FlowStats
from flowqueue.model.statuses import DURATION_BUCKETS_MS, duration_quantile


def test_no_durations_have_no_percentiles():
    assert duration_quantile({}, 0.5) is None
    stats = FlowStats()
    assert (stats.step_ms_p50, stats.step_ms_p95) == (None, None)


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ({"10": 4}, 0.5, 7.5),  # 2 of 4 in (5, 10]: half way
        ({"5": 1, "10": 1}, 0.5, 5.0),  # the rank ends the first bucket
        ({"100": 10}, 0.95, 50 + 50 * 0.95),
        ({"5": 50, "1000": 50}, 0.95, 500 + 500 * 0.9),
        ({"inf": 3}, 0.5, float(DURATION_BUCKETS_MS[-1])),  # the open bucket: its lower bound
    ],
)
def test_percentiles_interpolate_within_the_bucket(buckets, q, expected):
    assert duration_quantile(buckets, q) == pytest.approx(expected)


def test_the_api_model_carries_them():
    stats = FlowStats(step_ms_buckets={"25": 2, "50": 2}, step_ms_sum=120)
    dumped = stats.model_dump()
    assert dumped["step_ms_p50"] == pytest.approx(25.0)
    assert dumped["step_ms_p95"] == pytest.approx(25 + 25 * 0.9)
