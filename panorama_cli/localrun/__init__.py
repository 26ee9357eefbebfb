"""``panorama-cli run``: run a Panorama application graph on this machine (issue 10).

The app's code runs unmodified, as on the device: each business-logic node's descriptor entry
is a real process with /panorama and /opt/aws/panorama/{logs,storage} mounted for it; its
``import panoramasdk`` gets the simulated SDK (``sdk/panoramasdk``), which takes frames from
the cameras through shared memory and puts media to HDMI (an H.264 mp4) or other nodes.

Python API for tests::

    from panorama_cli.localrun import run_project

    result = run_project("my_app", frames=20, cameras={"front_door_camera": "vtest.avi"})
    result.report["cameras"]["front_door_camera"]["frames"]   # 20
    result.hdmi_frames["front_door_camera"][0]                # HxWx3 BGR uint8 as put
    result.annotations["front_door_camera"][0]["rects"]       # [(l, t, r, b), ...]

Module map: plan (graph + flags -> RunPlan), engine (the run), routing (the runner's answers
to the SDK), report (report.json), safe_files (files in the folders apps write into, never
through a link); apps/ (supervisor, sandbox, console log, ``--in-container``,
the SDK), frames/ (sources, pacing, feeds, sinks, channel + wire), models/ (archives,
inference, devices, converters), serve/ (``panorama-cli serve``: the appliance's policies over
the same runtime).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from panorama_cli.localrun.apps.limits import NodeLimits
from panorama_cli.localrun.engine import run_application
from panorama_cli.localrun.plan import RunOptions
from panorama_cli.localrun.report import RunResult

__all__ = ["RunOptions", "RunResult", "run_application", "run_project"]


def run_project(
    project_dir: str | Path,
    *,
    frames: int | None = None,
    cameras: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    models: Mapping[str, str | Path] | None = None,
    overrides: Sequence[str | Path] = (),
    duration: float | None = None,
    fast: bool = True,
    loop: bool = False,
    output_dir: str | Path | None = None,
    python: str | None = None,
    grace_s: float = 2.0,
    keep_frames: bool = True,
    writable_app: bool = False,
    limits: NodeLimits | None = None,
) -> RunResult:
    """Run the project in ``project_dir`` and return its report, HDMI frames and overlays.

    Same semantics as ``panorama-cli run`` (see :class:`RunOptions`), with test-friendly
    defaults: ``fast=True`` (every frame, no pacing) and ``keep_frames=True``.

    Raises:
        UserError: the project cannot run (see :func:`run_application`).
    """
    from panorama_cli.project.project import Project

    project = Project.discover(Path(project_dir))
    options = RunOptions(
        overrides=[Path(p) for p in overrides],
        cameras=dict(cameras or {}),
        params=dict(params or {}),
        models={k: Path(v) for k, v in (models or {}).items()},
        frames=frames,
        duration=duration,
        fast=fast,
        loop=loop,
        output_dir=Path(output_dir) if output_dir else None,
        python=python,
        grace_s=grace_s,
        keep_frames=keep_frames,
        writable_app=writable_app,
        limits=limits or NodeLimits(),
    )
    return run_application(project, options)
