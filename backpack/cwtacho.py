"""Report Tachometer statistics to Amazon CloudWatch Metrics (``cloudwatch:PutMetricData``).

:class:`CWTachometer` is the backpack README's drop-in for the frame loop: tick it once per
frame, and once per ``stats_interval`` it sends one aggregated datum -- ``StatisticValues``
(``SampleCount``, ``Sum``, ``Minimum``, ``Maximum`` of the frame-to-frame intervals), unit
``Seconds`` -- on which CloudWatch alarms can be set (e.g. "no samples for 5 minutes").

boto3 is imported when a CWTachometer is created, through :func:`backpack._optional.require`.
The Panorama Application Role needs ``cloudwatch:PutMetricData``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from backpack._optional import require
from backpack.timepiece import Clock, Tachometer, Ticker

#: botocore client settings used unless ``client_config`` overrides them: short timeouts and
#: botocore's "standard" retry mode (throttling, 5xx and connection errors, exponential
#: backoff with jitter, 3 attempts in all), so a synchronous report cannot stall the frame
#: loop for long.
DEFAULT_CLIENT_SETTINGS: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 10,
    "retries": {"mode": "standard", "total_max_attempts": 3},
}


class CWTachometer(Tachometer):
    """A :class:`~backpack.timepiece.Tachometer` that puts its statistics into CloudWatch.

    Each report calls PutMetricData with one datum: ``MetricName``, ``Dimensions``,
    ``Timestamp`` (report time, UTC), ``StatisticValues`` = {``SampleCount``: number of
    intervals, ``Sum``, ``Minimum``, ``Maximum``: seconds} and ``Unit`` = ``"Seconds"``.
    A failed call (network, credentials, throttling after retries, validation) is logged as
    a warning and remembered in :attr:`last_error`; it never raises out of :meth:`tick`.
    Without an executor the call runs inside :meth:`tick`, so pass one (e.g. a
    ``ThreadPoolExecutor``) to keep the frame loop from waiting on the network.

    Args:
        namespace: CloudWatch namespace, e.g. ``"MyPanoramaMetrics"``.
        metric_name: metric name, e.g. ``"frame_processing_time"``.
        dimensions: dimension names to values (at most 30), e.g. device and application id.
        stats_interval: reporting period, timedelta or seconds; CloudWatch's standard
            resolution is one minute, so 60 s (the default) or more is sensible.
        executor: if given, PutMetricData runs on it and :meth:`tick` returns at once.
        region: AWS region of the metrics; None uses the session's region.
        boto3_session: session to create the CloudWatch client from; None creates
            ``boto3.Session(region_name=region)``.
        parent_logger: log on ``parent_logger.getChild("CWTachometer")`` instead of the
            ``backpack.cwtacho`` logger.
        storage_resolution: 1 for high-resolution metrics, 60 (or None) for standard.
        client_config: a ``botocore.config.Config`` merged over
            :data:`DEFAULT_CLIENT_SETTINGS`.
        max_fps: highest expected tick rate in hertz (sizes the interval history).
        clock: seconds clock for the ticker and schedule (tests); see Tachometer.

    Raises:
        backpack._optional.MissingDependencyError: boto3 is not installed.
        ValueError: empty ``namespace`` or ``metric_name``, non-positive ``stats_interval``.
        botocore.exceptions.NoRegionError: no region given and none configured.
    """

    __slots__ = (
        "namespace",
        "metric_name",
        "dimensions",
        "storage_resolution",
        "last_error",
        "_cloudwatch",
        "_logger",
    )

    def __init__(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str] | None = None,
        stats_interval: datetime.timedelta | float = datetime.timedelta(seconds=60),
        executor: Executor | None = None,
        region: str | None = None,
        boto3_session: Any | None = None,
        parent_logger: logging.Logger | None = None,
        storage_resolution: int | None = None,
        client_config: Any | None = None,
        max_fps: float = 100.0,
        clock: Clock | None = None,
    ) -> None:
        if not namespace or not metric_name:
            raise ValueError("namespace and metric_name must not be empty")
        super().__init__(
            stats_callback=self._put_statistics,
            stats_interval=stats_interval,
            executor=executor,
            max_fps=max_fps,
            clock=clock,
        )
        self.namespace = namespace
        self.metric_name = metric_name
        self.dimensions = {str(k): str(v) for k, v in (dimensions or {}).items()}
        self.storage_resolution = storage_resolution
        self.last_error: Exception | None = None
        self._logger = (
            parent_logger.getChild(type(self).__name__)
            if parent_logger is not None
            else logging.getLogger(__name__)
        )
        boto3 = require("boto3", "CWTachometer")
        from botocore.config import Config

        config = Config(**DEFAULT_CLIENT_SETTINGS)
        if client_config is not None:
            config = config.merge(client_config)
        session = boto3_session if boto3_session is not None else boto3.Session(region_name=region)
        self._cloudwatch = session.client("cloudwatch", region_name=region, config=config)

    def metric_datum(self, timestamp: datetime.datetime, ticker: Ticker) -> dict[str, Any]:
        """The PutMetricData ``MetricData`` entry for one reporting period.

        Args:
            timestamp: the report time (aware; converted to UTC).
            ticker: the period's intervals in seconds (at least one).

        Returns:
            A ``MetricDatum`` dict as the CloudWatch API defines it.
        """
        datum: dict[str, Any] = {
            "MetricName": self.metric_name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions.items()],
            "Timestamp": timestamp.astimezone(datetime.timezone.utc),
            "StatisticValues": {
                "SampleCount": float(ticker.len()),
                "Sum": ticker.sum(),
                "Minimum": ticker.min(),
                "Maximum": ticker.max(),
            },
            "Unit": "Seconds",
        }
        if self.storage_resolution is not None:
            datum["StorageResolution"] = self.storage_resolution
        return datum

    def _put_statistics(
        self, timestamp: datetime.datetime, ticker: Ticker
    ) -> dict[str, Any] | None:
        """Stats callback: send one datum. Returns it, or None when the call failed."""
        try:
            datum = self.metric_datum(timestamp, ticker)
            self._cloudwatch.put_metric_data(Namespace=self.namespace, MetricData=[datum])
        except Exception as exc:  # never into the frame loop: log and go on
            self.last_error = exc
            self._logger.warning(
                "CloudWatch PutMetricData for %s/%s failed (%d samples dropped): %s",
                self.namespace,
                self.metric_name,
                ticker.len(),
                exc,
            )
            return None
        self.last_error = None
        return datum

    def __repr__(self) -> str:
        return (
            f"<CWTachometer namespace={self.namespace} metric_name={self.metric_name} "
            f"dimensions={self.dimensions} pending={len(self.ticker)}>"
        )
