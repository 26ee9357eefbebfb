"""``panorama-cli serve --check``: open every camera of the graph once and say what it is.

One line per camera: ``camera NAME: reachable 768x576 10.0 fps h264 (SOURCE)`` or
``camera NAME: NOT reachable: why (SOURCE)``; the exit status is 0 when every camera is
reachable, else 1. Users asked for this before deploying to a site.
"""

from __future__ import annotations

from typing import Any

#: Seconds each camera gets to answer and deliver a first frame.
CHECK_TIMEOUT_S = 10.0


def describe(name: str, check: Any, uri: str) -> str:
    """One line for one camera (see the module docstring)."""
    if not check.reachable:
        return f"camera {name}: NOT reachable: {check.error} ({uri})"
    size = f"{check.width}x{check.height}" if check.width else "size unknown"
    fps = f"{check.fps:.1f} fps" if check.fps else "fps unknown"
    return f"camera {name}: reachable {size} {fps} {check.codec or 'codec unknown'} ({uri})"


def check_cameras(project: Any, options: Any) -> list[str]:
    """Check every camera of the plan, one after the other.

    Returns:
        One line per camera (:func:`describe`); a line starting with ``camera X: NOT`` is a
        camera that could not be reached.

    Raises:
        UserError / UsageError: the graph cannot be planned (as at serve's start).
    """
    from panorama_cli.localrun.frames.camera_check import check_camera
    from panorama_cli.localrun.frames.frame import redact_uri
    from panorama_cli.localrun.plan import build_plan

    plan = build_plan(project, options)
    return [
        describe(name, check_camera(spec, CHECK_TIMEOUT_S), redact_uri(spec))
        for name, spec in plan.cameras.items()
    ]
