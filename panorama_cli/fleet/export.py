"""``panorama-cli export``: images, then the target's files in the bundle folder.

Order: the run plan (bad input fails before anything is built), each node's image as
``run --in-container`` finds it (no built image: the build-container command to run), the
runtime and serve images, the node images (:mod:`.images`, tagged by content: an unchanged
project builds nothing), ``--registry`` pushes, then the exporter (a pure function of the
:class:`~.model.FleetApp`) and the files written: every file through a temporary name and a
rename, secrets with mode 0600 in folders of mode 0700; a failure before the writes changes
nothing in the folder.

The bundle's control key (serve's ``--control-key``; each node's token derives from it) is made
once and kept in ``secrets/control.key`` (0600): a later export into the same folder reuses it,
so a re-export changes no node's credential. Removing the file and exporting again rotates
every credential of the bundle. serve's login token (HTTP and RTSP out) is kept the same way in
``secrets/serve-token`` (every target writes it there; remove it to make a new one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.fleet.app import EXPORT_DIR, ExportOptions, fleet_app
from panorama_cli.fleet.model import (
    CONTROL_KEY_BUNDLE_FILE,
    SERVE_TOKEN_BUNDLE_FILE,
    FleetApp,
    OutFile,
    dns_label,
)

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """What export made.

    Attributes:
        app: the exported application.
        files: the bundle's files written (relative paths).
        built: images built this time (empty: nothing changed).
        pushed: images pushed to ``--registry``.
        seconds: wall time.
    """

    app: FleetApp
    files: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _serve_inputs(project: Any, options: Any) -> tuple[dict[str, Path], tuple[str, ...]]:
    """Files export adds to the serve image's project and serve's arguments for them."""
    extra: dict[str, Path] = {}
    args: list[str] = []
    if options.graph:
        graph = Path(options.graph).resolve()
        inside = graph.is_relative_to(project.root)
        path = graph.relative_to(project.root).as_posix() if inside else f"{EXPORT_DIR}/graph.json"
        if not inside:
            extra[path] = graph
        args += ["--graph", path]
    for index, override in enumerate(options.overrides):
        path = f"{EXPORT_DIR}/overrides/{index}-{Path(override).name}"
        extra[path] = Path(override).resolve()
        args += ["--override", path]
    for node, model_file in options.models.items():
        path = f"{EXPORT_DIR}/models/{dns_label(node)}/{Path(model_file).name}"
        extra[path] = Path(model_file).resolve()
        args += ["--model", f"{node}={path}"]
    return extra, tuple(args)


def _push(client: Any, local: str, registry: str, on_log: Callable[[str], None]) -> str:
    """Tag ``local`` under ``registry`` and push it; returns the pushed reference."""
    repository, _, tag = local.rpartition(":")
    remote_repo = f"{registry.rstrip('/')}/{repository.split('/', 1)[-1]}"
    client.images.get(local).tag(remote_repo, tag)
    on_log(f"pushing {remote_repo}:{tag}")
    try:
        for line in client.api.push(remote_repo, tag=tag, stream=True, decode=True):
            if isinstance(line, dict) and line.get("error"):
                raise UserError(
                    f"push of {remote_repo}:{tag} failed: {line['error']}",
                    hint=f"check that the registry {registry} answers and takes pushes",
                )
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - docker.errors.APIError, requests errors
        raise UserError(
            f"push of {remote_repo}:{tag} failed: {exc}",
            hint=f"check that the registry {registry} answers and takes pushes",
        ) from None
    return f"{remote_repo}:{tag}"


def bundle_key(folder: Path) -> bytes:
    """The control key of the bundle in ``folder``: the one its ``secrets/control.key`` holds,
    else a new one (:func:`~panorama_cli.localrun.frames.identity.new_key`; the exporters
    write it there).

    Raises:
        UserError: ``secrets/control.key`` exists but is not a regular file holding a key.
    """
    from panorama_cli.localrun.frames.identity import new_key, read_key

    path = Path(folder) / CONTROL_KEY_BUNDLE_FILE
    if os.path.lexists(path):
        log.debug("control key kept from %s", path)
        return read_key(path)
    return new_key()


def bundle_serve_token(folder: Path) -> str:
    """serve's login token of the bundle in ``folder``: the one its ``secrets/serve-token``
    holds, else a new one (``secrets.token_urlsafe(32)``: 256 random bits).

    Raises:
        UserError: ``secrets/serve-token`` exists but is not a regular file holding a token.
    """
    import secrets

    from panorama_cli.localrun.serve.auth import read_token_file

    path = Path(folder) / SERVE_TOKEN_BUNDLE_FILE
    if os.path.lexists(path):
        log.debug("serve token kept from %s", path)
        return read_token_file(path)
    return secrets.token_urlsafe(32)


def write_bundle(folder: Path, files: list[OutFile], app: FleetApp) -> list[str]:
    """Write ``files`` and the camera files into ``folder`` (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in files:
        target = folder / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if (item.private or item.mode is not None) and target.parent != folder:
            os.chmod(target.parent, 0o700)  # secrets/: no other user of this machine enters
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            mode = item.mode if item.mode is not None else (0o600 if item.private else 0o644)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as stream:
                stream.write(item.content)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(item.path)
    for bundle_file in app.files:
        target = folder / bundle_file.path
        if target.exists() and _same(target, bundle_file.source):
            written.append(bundle_file.path)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(bundle_file.source, partial)
        os.replace(partial, target)
        written.append(bundle_file.path)
    return written


def _same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return _sha256(a) == _sha256(b)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_application(
    project: Any,
    run_options: Any,
    options: ExportOptions,
    on_log: Callable[[str], None] | None = None,
    render: Callable[[FleetApp, Any], list[OutFile]] | None = None,
) -> ExportResult:
    """Build the images and write the bundle of ``options.target`` (module docstring).

    Args:
        project: the project.
        run_options: run's options (graph, overrides, cameras, parameters, models).
        options: export's options.
        on_log: progress lines.
        render: ``f(app, client) -> files`` of the target (default: by ``options.target``).

    Returns:
        :class:`ExportResult`.

    Raises:
        UserError / UsageError: bad input, no image of a node (build-container), an engine
            that does not answer, a failed build or push.
    """
    from panorama_cli.build.docker_client import connect
    from panorama_cli.fleet import images
    from panorama_cli.fleet.runtime_image import ensure_runtime_image
    from panorama_cli.localrun.apps.container_images import resolve_image
    from panorama_cli.localrun.plan import build_plan

    t0 = time.monotonic()
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        (on_log or (lambda text: log.info("%s", text)))(line)

    plan = build_plan(project, dataclasses.replace(run_options, in_container=True))
    control_key = bundle_key(Path(options.output_dir))  # a bad key file fails before a build
    serve_token = bundle_serve_token(Path(options.output_dir))
    client = connect()
    given = dict(run_options.images)
    found = {
        b.node.name: resolve_image(
            client, b, given.get(b.node.name) or given.get(""), options.platform
        )
        for b in plan.business
    }
    platform = options.platform or next(iter(found.values())).platform
    app_label = dns_label(project.root.name)
    runtime = ensure_runtime_image(client, platform, base=options.runtime_base, on_log=say)
    extra, serve_args = _serve_inputs(project, run_options)
    files = images.project_files(plan, extra)
    refs = {"serve": images.serve_image(client, app_label, runtime, project.root.name, files,
                                        platform, say)}  # fmt: skip
    for name, node in found.items():
        refs[name] = images.node_image(
            client, app_label, dns_label(name), node.image_id, platform, say
        )
    built = [line.split(" ", 2)[1] for line in said if line.startswith("building ")]
    pushed = []
    if options.registry:
        for key, ref in list(refs.items()):
            refs[key] = _push(client, ref, options.registry, say)
            pushed.append(refs[key])
    node_refs = {name: (refs[name], found[name].python_path) for name in found}
    app = fleet_app(plan, options, refs["serve"], node_refs, serve_args, platform,
                    control_key=control_key, serve_token=serve_token)  # fmt: skip
    for line in gpu_notes(app, plan.gpu_nodes, options.target):
        say(line)
    out = (render or _renderer(options, project))(app, client)
    if all(item.path != CONTROL_KEY_BUNDLE_FILE for item in out):
        out.append(key_file(app))
    if all(item.path != SERVE_TOKEN_BUNDLE_FILE for item in out):
        out.append(serve_token_file(app))
    written = write_bundle(Path(options.output_dir), out, app)
    return ExportResult(app, written, built, pushed, time.monotonic() - t0)


def gpu_notes(app: FleetApp, reasons: Mapping[str, str], target: str) -> list[str]:
    """One line per container of ``app`` that gets the GPU (``--device cuda``), and why.

    Args:
        app: the application.
        reasons: business-logic node -> why it gets the GPU (the plan's ``gpu_nodes``).
        target: the export's target (kubernetes: a Pod of several GPU containers asks for as
            many GPUs, which a line says).

    Returns:
        e.g. ``["--device cuda: node code_node's container gets the GPU (its package asks for
        nvhost_gpu (hardware_access))"]``; empty without ``--device cuda``.
    """
    lines = []
    if app.serve.gpu:
        lines.append("--device cuda: serve's container gets the GPU (it runs the model nodes)")
    for node in app.nodes:
        if node.gpu:
            why = reasons.get(node.node, "")
            lines.append(f"--device cuda: node {node.node}'s container gets the GPU ({why})")
    gpus = sum(1 for c in app.containers if c.gpu)
    if target == "kubernetes" and gpus > 1:
        lines.append(
            f"--device cuda: the Pod asks for {gpus} nvidia.com/gpu (one per container): a box "
            "with one GPU needs the NVIDIA device plugin's GPU sharing (time-slicing)"
        )
    return lines


def key_file(app: FleetApp) -> OutFile:
    """``secrets/control.key`` (private): the app's control key as ``read_key`` reads it.

    Raises:
        ValueError: the app has no control key secret.
    """
    control = next((s for s in app.secrets if s.kind == "control-key"), None)
    if control is None:
        raise ValueError(f"{app.name} has no control key")
    return OutFile(CONTROL_KEY_BUNDLE_FILE, control.value.encode() + b"\n", private=True)


def serve_token_file(app: FleetApp) -> OutFile:
    """``secrets/serve-token`` (private): serve's login token, one line.

    Raises:
        ValueError: the app has no serve token secret.
    """
    token = next((s for s in app.secrets if s.kind == "serve-token"), None)
    if token is None:
        raise ValueError(f"{app.name} has no serve token")
    return OutFile(SERVE_TOKEN_BUNDLE_FILE, token.value.encode() + b"\n", private=True)


def _account(project: Any) -> str:
    """The account the packages belong to (the Greengrass component's name), else ``local``."""
    try:
        accounts = project.graph_accounts()
    except UserError:
        accounts = []
    return next((a for a in accounts if a and a.isdigit()), "local")


def _renderer(options: ExportOptions, project: Any) -> Callable[[FleetApp, Any], list[OutFile]]:
    if options.target == "compose":
        from panorama_cli.fleet import compose

        return lambda app, client: compose.render(app)
    if options.target == "kubernetes":
        from panorama_cli.fleet import kubernetes

        return lambda app, client: kubernetes.render(
            app,
            device_names=options.device_names,
            node_selector=dict(options.node_selector) or None,
            storage="hostpath" if options.host_path_storage else "pvc",
            host_network=options.host_network,
        )
    if options.target == "greengrass":
        from panorama_cli.fleet.greengrass_bundle import render_greengrass

        return lambda app, client: render_greengrass(
            app, client, Path(options.output_dir), _account(project), bool(options.registry)
        )
    raise UserError(
        f"unknown target {options.target!r}", hint="use compose, kubernetes or greengrass"
    )
