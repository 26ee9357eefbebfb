"""``run``: run the application graph on this machine, on real video, with the app unmodified."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from panorama_cli import console
from panorama_cli.commands._app_options import graph_options, process_options, run_options
from panorama_cli.commands._shared import json_option

_EPILOG = """\b
Examples:
  panorama-cli run --camera front_door_camera=vtest.avi --frames 100 --fast
  panorama-cli run --override graphs/my-app/override-multicam.json \\
      --camera CAMERA_A=rtsp://user:pw@10.0.0.5/stream --camera CAMERA_B=/dev/video0
  panorama-cli run --camera cam=clips/ --param threshold=60 --model model_node=model.onnx --json
  panorama-cli run --camera cam=vtest.avi --in-container --frames 50   (build-container's image)
  panorama-cli run --camera cam=vtest.avi --device cuda --model model_node=model.onnx
"""


@click.command("run", epilog=_EPILOG)
@graph_options
@click.option(
    "--frames", type=click.IntRange(min=1), metavar="N", help="Frames per camera, then stop."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Seconds, then stop.",
)
@click.option("--fast", is_flag=True, help="Every frame, as fast as the app takes them.")
@click.option("--loop", is_flag=True, help="Restart video files at their end.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Run folder (default: .panorama-run/<timestamp>/ in the project).",
)
@click.option(
    "--snapshot-every",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Also save every Nth HDMI frame as PNG.",
)
@json_option(text="Print report.json on stdout.")
@process_options
def cli(
    frames: int | None,
    duration: float | None,
    fast: bool,
    loop: bool,
    output_dir: Path | None,
    snapshot_every: int,
    as_json: bool,
    **kw: Any,
) -> None:
    """Run the application graph here: each business-logic node's entry as a real process
    (/panorama = its src/; with --in-container, in its image), cameras from video/RTSP/devices,
    models in the runner, HDMI to hdmi/<stream_id>.mp4, and report.json in the run folder.

    Ends at --frames/--duration/end of input/Ctrl-C (exit 0) or when the app exits (its
    status, at least 1).
    """
    from panorama_cli.errors import UserError
    from panorama_cli.localrun import run_application
    from panorama_cli.project.project import Project

    view = _LiveView(as_json)
    try:
        project = Project.discover()
        options = run_options(
            project,
            kw,
            frames=frames,
            duration=duration,
            fast=fast,
            loop=loop,
            output_dir=output_dir.resolve() if output_dir else None,
            snapshot_every=snapshot_every,
        )
        from panorama_cli.interrupts import hangup_stops

        with hangup_stops():  # a closed terminal stops the run as SIGTERM does
            result = run_application(project, options, view.notify)
    except UserError as exc:
        if as_json:  # a script reading stdout gets an object, also when the run cannot start
            console.emit_json({"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code})
        raise  # and the one line on stderr, with its exit status
    finally:
        view.close()
    report = result.report
    if as_json:
        console.emit_json(report)
    else:
        _print_summary(report, result.run_dir, project.root)
    if result.exit_status:
        console.error(
            f"the app {'failed' if report['exit_reason'] == 'app-error' else 'exited'} "
            f"(status {report['app_exit_code']}) before the run's end; its output is above and "
            f"in {_rel(result.run_dir / 'logs', project.root)}/"
        )
        from panorama_cli.localrun.apps.appliance import console_tail, failure_hint

        why = failure_hint(console_tail(result.run_dir / "logs"))
        if why:  # EROFS or a relative path: the appliance's filesystem, said on the last line
            console.info(f"why: {why}")
        sys.exit(result.exit_status)  # click would swallow its own Exit (standalone_mode=False)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class _LiveView:
    """A rich status line (frames, fps per camera) under the app's console output (stderr)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.status: Any = None
        self.prefix = False

    def notify(self, event: str, data: dict[str, Any]) -> None:
        err = console.err()
        if event == "output":
            line = data["line"]
            err.print(f"{data['node']}| {line}" if self.prefix else line, markup=False)
        elif event == "note":
            console.info(data["text"])
        elif event == "started":
            self.prefix = len(data["nodes"]) > 1
            if not self.quiet:
                console.info(f"run folder: {data['run_dir']}")
                self.status = err.status("starting the app…")
                self.status.start()
        elif event == "status" and self.status is not None:
            cams = data["cameras"]
            parts = [f"{n}: {c['frames']} frames {c['fps']:.1f} fps" for n, c in cams.items()]
            if any(c["dropped"] for c in cams.values()):
                parts.append(f"dropped {sum(c['dropped'] for c in cams.values())}")
            text = " · ".join(parts) or "no camera"
            self.status.update(f"{data['elapsed_s']:.0f} s · {text}")
        elif event == "stopping" and self.status is not None:
            self.status.update(f"stopping ({data['reason']})…")

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def _print_summary(report: dict[str, Any], run_dir: Path, root: Path) -> None:
    rows: list[list[str]] = []
    for name, cam in report["cameras"].items():
        read = cam.get("read_ms") or {"mean": 0.0, "p50": 0.0, "p95": 0.0}
        rows.append(
            [f"camera {name} read ({cam['fps']:.1f} fps)", f"{cam['frames']} frames",
             f"{read['mean']:.2f} ms", f"{read['p50']:.2f} ms", f"{read['p95']:.2f} ms"]
        )  # fmt: skip
        if cam["dropped"]:
            rows[-1][1] += f" ({cam['dropped']} dropped)"
    for name, node in report["nodes"].items():
        for kind in ("get", "put", "call"):
            s = node[f"{kind}_ms"]
            if s["count"]:
                rows.append(
                    [f"{name} {kind}()", f"{s['count']} calls", f"{s['mean']:.2f} ms",
                     f"{s['p50']:.2f} ms", f"{s['p95']:.2f} ms"]
                )  # fmt: skip
    for name, model in report["models"].items():
        rows.append(
            [f"model {name} ({model['backend']})", f"{model['calls']} calls",
             f"{model['mean_ms']:.2f} ms", f"{model.get('p50_ms', 0.0):.2f} ms",
             f"{model['p95_ms']:.2f} ms"]
        )  # fmt: skip
    console.emit_table(["", "count", "mean", "p50", "p95"], rows, title="timings")
    for stream, out in report["hdmi"].items():
        if out.get("path"):
            console.info(
                f"HDMI {stream}: {out['frames']} frames -> {_rel(run_dir, root)}/{out['path']}"
            )
    startup = report["startup_s"]
    if report["exit_reason"] in ("app-error", "app-exited"):
        return
    console.success(
        f"run ended ({report['exit_reason']}) after {report['wall_s']:.1f} s"
        + (f", first frame at {startup:.2f} s" if startup is not None else ""),
        f"open {_rel(run_dir, root)}/report.json",
    )
