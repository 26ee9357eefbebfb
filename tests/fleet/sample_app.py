"""A FleetApp as export builds it, for the exporters' tests (no engine, no project)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from panorama_cli.fleet import model
from panorama_cli.fleet.model import BundleFile, Camera, Container, FleetApp, Secret


def sample_app(tmp: Path | None = None, **changes: Any) -> FleetApp:
    """people_counter: one camera file, one RTSP camera with credentials, one parameter,
    one business-logic node (``people_counter``), serve on port 8765."""
    video = (tmp / "vtest.avi") if tmp else Path("/nonexistent/vtest.avi")
    if tmp:
        video.write_bytes(b"not really a video")
    secret = Secret(
        name="camera-lobby",
        key="lobby",
        value="rtsp://admin:s3cret@10.0.0.5:554/stream1",
        target=f"{model.SECRETS_DIR}/camera-lobby",
    )
    cameras = {
        "front_door": Camera("front_door", "file", f"{model.CAMERAS_DIR}/front_door.avi"),
        "lobby": Camera("lobby", "secret", secret.target, secret),
    }
    serve = Container(
        name="serve",
        role="serve",
        node="",
        image="panorama-cli/people-counter-serve:0123456789ab",
        args=(
            "serve",
            "--listen",
            f"0.0.0.0:{model.HTTP_PORT}",
            "--rtsp-port",
            str(model.RTSP_PORT),
            "--state-dir",
            model.STATE_DIR,
            "--external-nodes",
            "--log-format",
            "json",
        ),  # fmt: skip
        mounts=model.serve_mounts(),
        ports=((model.HTTP_PORT, 8765), (model.RTSP_PORT, 8554)),
        health_path="/healthz",
        ready_path="/readyz",
        working_dir=model.PROJECT_DIR,
    )
    node = Container(
        name="people-counter",
        role="node",
        node="people_counter",
        image="panorama-cli/people-counter-node-people-counter:fedcba987654",
        command=(
            "/usr/bin/env",
            "-i",
            "PATH=/usr/bin:/bin",
            "PANORAMA_LOCALRUN_NODE=people_counter",
            "python3",
            "/panorama/app.py",
        ),  # fmt: skip
        mounts=model.node_mounts("people-counter"),
        read_only=True,
        tmpfs=("/tmp",),
    )
    app = FleetApp(
        name="people-counter",
        version="0123456789ab",
        serve=serve,
        nodes=(node,),
        cameras=cameras,
        params={"threshold": "0.6"},
        files=(BundleFile("cameras/front_door.avi", video, cameras["front_door"].value),),
        secrets=(secret,),
        volumes=tuple(sorted({m.volume for c in (serve, node) for m in c.mounts})),
    )
    return dataclasses.replace(app, **changes) if changes else app
