"""backpack.cwtacho.CWTachometer against CloudWatch in a real moto server (aws_env)."""

from __future__ import annotations

import datetime
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from backpack.cwtacho import CWTachometer
from backpack.errors import MissingDependencyError
from tests.support.aws_fixtures import dead_endpoint_url

NAMESPACE = "PanoramaTest"
METRIC = "frame_processing_time"
DIMENSIONS = {"device_id": "device-0123", "application_instance_id": "applicationInstance-0123"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def tick_intervals(tacho: CWTachometer, clock: FakeClock, intervals) -> list:
    """Tick once, then once after each interval (seconds); return the tick results."""
    results = [tacho.tick()]
    for interval in intervals:
        clock.now += interval
        results.append(tacho.tick())
    return results


def statistics(region: str, dimensions=DIMENSIONS) -> list[dict]:
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    now = datetime.datetime.now(datetime.timezone.utc)
    response = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=METRIC,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=now - datetime.timedelta(minutes=10),
        EndTime=now + datetime.timedelta(minutes=10),
        Period=3600,
        Statistics=["SampleCount", "Sum", "Minimum", "Maximum"],
        Unit="Seconds",
    )
    return response["Datapoints"]


def test_flushed_statistics_land_in_cloudwatch(aws_env):
    clock = FakeClock()
    tacho = CWTachometer(
        namespace=NAMESPACE,
        metric_name=METRIC,
        dimensions=DIMENSIONS,
        region=aws_env.region,
        clock=clock,
    )
    results = tick_intervals(tacho, clock, [0.25, 0.5, 0.125, 1.0, 0.0625])
    assert not any(fired for fired, _ in results)  # 60 s period not over
    fired, datum = tacho.flush()
    assert fired and datum["StatisticValues"]["SampleCount"] == 5
    assert tacho.last_error is None

    (point,) = statistics(aws_env.region)
    assert point["SampleCount"] == 5
    assert point["Sum"] == pytest.approx(1.9375)
    assert point["Minimum"] == pytest.approx(0.0625)
    assert point["Maximum"] == pytest.approx(1.0)
    assert point["Unit"] == "Seconds"

    cloudwatch = boto3.client("cloudwatch", region_name=aws_env.region)
    (metric,) = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert metric["MetricName"] == METRIC
    assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == DIMENSIONS


def test_periodic_reports_from_tick_through_executor(aws_env):
    clock = FakeClock()
    session = boto3.Session(region_name=aws_env.region)
    with ThreadPoolExecutor(max_workers=1) as executor:
        tacho = CWTachometer(
            namespace=NAMESPACE,
            metric_name=METRIC,
            dimensions=DIMENSIONS,
            stats_interval=datetime.timedelta(seconds=1),
            executor=executor,
            boto3_session=session,
            clock=clock,
        )
        # ticks every 0.25 s for 2 s: reports at t=1 (4 intervals) and t=2 (4 intervals);
        # then 3 more intervals of 0.5 s: report at t=3 (2 intervals), pending 1 at t=3.5.
        results = tick_intervals(tacho, clock, [0.25] * 8 + [0.5] * 3)
        futures = [value for fired, value in results if fired]
        assert len(futures) == 3
        data = [f.result(timeout=30) for f in futures]
    assert all(d is not None for d in data), tacho.last_error
    assert [d["StatisticValues"]["SampleCount"] for d in data] == [4, 4, 2]

    (point,) = statistics(aws_env.region)
    assert point["SampleCount"] == 10
    assert point["Sum"] == pytest.approx(3.0)
    assert point["Minimum"] == pytest.approx(0.25)
    assert point["Maximum"] == pytest.approx(0.5)


def test_dead_endpoint_is_logged_never_raised(aws_env, monkeypatch, caplog):
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint_url())
    clock = FakeClock()
    tacho = CWTachometer(
        namespace=NAMESPACE,
        metric_name=METRIC,
        stats_interval=1.0,
        region=aws_env.region,
        clock=clock,
    )
    with caplog.at_level(logging.WARNING, logger="backpack.cwtacho"):
        results = tick_intervals(tacho, clock, [0.5, 0.5, 0.5])  # reports (and fails) at t=1
        assert [fired for fired, _ in results] == [False, False, True, False]
        assert results[2][1] is None
        assert tacho.flush() == (True, None)
    assert tacho.last_error is not None
    assert "PutMetricData" in caplog.text and NAMESPACE in caplog.text
    assert len(tacho.ticker) == 0  # the failed period is dropped, not retried forever


def test_dead_endpoint_with_executor_future_completes_without_error(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint_url())
    parent = logging.getLogger("myapp")
    clock = FakeClock()
    with ThreadPoolExecutor(max_workers=1) as executor:
        tacho = CWTachometer(
            namespace=NAMESPACE,
            metric_name=METRIC,
            stats_interval=1.0,
            executor=executor,
            region=aws_env.region,
            parent_logger=parent,
            clock=clock,
        )
        results = tick_intervals(tacho, clock, [0.5, 0.5])
        fired, future = results[-1]
        assert fired
        assert future.result(timeout=30) is None
        assert future.exception() is None
    assert tacho._logger.name == "myapp.CWTachometer"


def test_missing_boto3_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingDependencyError, match="CWTachometer.*boto3"):
        CWTachometer(namespace=NAMESPACE, metric_name=METRIC, region="us-east-1")


def test_empty_names_are_rejected():
    with pytest.raises(ValueError):
        CWTachometer(namespace="", metric_name=METRIC, region="us-east-1")
