"""Polling a cloud resource until it reaches an end state, with exponential backoff.

Used for package registration (DescribePackageVersion) and deployments
(DescribeApplicationInstance). The schedule is tenacity's ``wait_exponential``: the first
wait is ``interval`` seconds, each next one doubles, capped at ``max_interval`` seconds; the
whole wait stops after ``timeout`` seconds. Upstream panorama-cli slept a fixed 30 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest wait between two polls, seconds.
MAX_INTERVAL = 30.0


def poll(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    interval: float,
    timeout: float,
    max_interval: float = MAX_INTERVAL,
    on_wait: Callable[[T, float], None] | None = None,
) -> tuple[T, bool]:
    """Call ``fetch()`` until ``done(result)`` is true or ``timeout`` seconds have passed.

    Args:
        fetch: one poll, e.g. a DescribePackageVersion call; what it raises propagates
            (AWS errors are already :class:`~panorama_cli.errors.UserError` there).
        done: whether a result is an end state.
        interval: first wait between polls, seconds (> 0).
        timeout: total time to wait, seconds; 0 polls once.
        max_interval: cap on the wait between polls, seconds.
        on_wait: called with the last result and the coming wait (seconds) before each
            sleep, e.g. to show the current status.

    Returns:
        ``(last result, True)`` when it reached an end state, ``(last result, False)`` when
        the timeout passed first.
    """
    import tenacity

    log.debug(
        "polling every %.1f s (up to %.0f s) for at most %.0f s", interval, max_interval, timeout
    )

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_wait is not None and state.outcome is not None and state.next_action is not None:
            on_wait(state.outcome.result(), state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda result: not done(result)),
        wait=tenacity.wait_exponential(multiplier=interval, min=interval, max=max_interval),
        stop=tenacity.stop_after_delay(timeout),
        before_sleep=before_sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    result = retrying(fetch)
    return result, done(result)
