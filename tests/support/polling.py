"""Waiting in tests for something that happens in another process or thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(predicate: Callable[[], Any], timeout_s: float, what: str, every: float = 0.2) -> Any:
    """``predicate()``'s first truthy value, polled every ``every`` seconds.

    Raises:
        AssertionError: none within ``timeout_s`` seconds (names ``what`` and the last value).
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout_s:g} s (last: {last!r})")
