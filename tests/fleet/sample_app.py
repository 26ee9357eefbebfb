"""A FleetApp as export builds it, for the exporters' tests (no engine, no project)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from panorama_cli.fleet import model
from panorama_cli.fleet.app import SERVE_LIMITS, control_secrets, serve_token_secret
from panorama_cli.fleet.model import BundleFile, Camera, Container, FleetApp, Secret
from panorama_cli.localrun.apps.limits import NodeLimits

#: The sample's control key (fixed: the same app gives the same bytes).
KEY = bytes(range(32))
#: The sample's serve login token.
SERVE_TOKEN = "sample-serve-token-0123456789abcdefghijklmnopq"


def sample_app(
    tmp: Path | None = None, *, limits: NodeLimits | None = None, **changes: Any
) -> FleetApp:
    """people_counter: one camera file, one RTSP camera with credentials, one parameter,
    one business-logic node (``people_counter``), serve on port 8765 with the control key
    :data:`KEY` and the login token :data:`SERVE_TOKEN`, hardened as export makes it (users
    that are not root, read-only roots, CPU limits), the node with its own token and
    ``limits`` (default: the defaults)."""
    control, tokens = control_secrets(KEY, ["people_counter"])
    login = serve_token_secret(SERVE_TOKEN)
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
            "--control-key",
            model.CONTROL_KEY_FILE,
            "--log-format",
            "json",
            "--auth-token-file",
            model.SERVE_TOKEN_FILE,
            "--public-url",
            "rtsp://0.0.0.0:8554",
        ),  # fmt: skip
        mounts=model.serve_mounts(),
        ports=((model.HTTP_PORT, 8765), (model.RTSP_PORT, 8554)),
        health_path="/healthz",
        ready_path="/readyz",
        working_dir=model.PROJECT_DIR,
        secrets=(secret, control, login),
        read_only=True,
        tmpfs=("/tmp",),
        limits=SERVE_LIMITS,
        user=(model.SERVE_UID, model.APP_GID),
        cpus=2.0,
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
            f"PANORAMA_LOCALRUN_TOKEN_FILE={model.NODE_TOKEN_FILE}",
            "python3",
            "/panorama/app.py",
        ),  # fmt: skip
        mounts=model.node_mounts("people-counter"),
        read_only=True,
        tmpfs=("/tmp",),
        secrets=(tokens["people_counter"],),
        limits=limits or NodeLimits(),
        user=(model.NODE_UID_BASE, model.APP_GID),
        cpus=1.0,
    )
    app = FleetApp(
        name="people-counter",
        version="0123456789ab",
        serve=serve,
        nodes=(node,),
        cameras=cameras,
        params={"threshold": "0.6"},
        files=(BundleFile("cameras/front_door.avi", video, cameras["front_door"].value),),
        secrets=(secret, control, login, tokens["people_counter"]),
        volumes=tuple(sorted({m.volume for c in (serve, node) for m in c.mounts})),
    )
    return dataclasses.replace(app, **changes) if changes else app


def without_camera_secrets(app: FleetApp, **changes: Any) -> FleetApp:
    """``app`` without its secret cameras (the control key and node tokens stay: every app
    has them)."""
    cameras = {k: c for k, c in app.cameras.items() if c.kind != "secret"}
    serve = dataclasses.replace(
        app.serve, secrets=tuple(s for s in app.serve.secrets if s.kind != "camera")
    )
    secrets = tuple(s for s in app.secrets if s.kind != "camera")
    return dataclasses.replace(
        app, **{"serve": serve, "cameras": cameras, "secrets": secrets, **changes}
    )


def without_camera_files(app: FleetApp, **changes: Any) -> FleetApp:
    """``app`` without its camera files (a Kubernetes bundle has hostPath folders for them only
    with ``--host-path-storage``)."""
    cameras = {k: c for k, c in app.cameras.items() if c.kind != "file"}
    serve_args = tuple(a for a in app.serve.args if "front_door" not in a)
    serve = dataclasses.replace(app.serve, args=serve_args)
    return dataclasses.replace(app, **{"serve": serve, "cameras": cameras, "files": (), **changes})


def cuda_app(tmp: Path | None = None, *, serve: bool = True, node: bool = False) -> FleetApp:
    """The sample exported with ``--device cuda``: serve gets the GPU when ``serve`` (the graph
    has model nodes), the ``people_counter`` node's container when ``node`` (its package asks
    for an accelerator, or the graph has no model node)."""
    app = sample_app(tmp, device="cuda")
    return dataclasses.replace(
        app,
        serve=dataclasses.replace(app.serve, gpu=serve),
        nodes=tuple(dataclasses.replace(n, gpu=node) for n in app.nodes),
    )
