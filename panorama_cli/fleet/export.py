"""``panorama-cli export``: images, then the target's files in the bundle folder.

Order: the run plan (bad input fails before anything is built), each node's image as
``run --in-container`` finds it (no built image: the build-container command to run), the
runtime and serve images, the node images (:mod:`.images`, tagged by content: an unchanged
project builds nothing), ``--registry`` pushes, then the exporter (a pure function of the
:class:`~.model.FleetApp`) and the files written: every file through a temporary name and a
rename, secrets with mode 0600; a failure before the writes changes nothing in the folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.fleet.app import EXPORT_DIR, ExportOptions, fleet_app
from panorama_cli.fleet.model import FleetApp, OutFile, dns_label

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


def write_bundle(folder: Path, files: list[OutFile], app: FleetApp) -> list[str]:
    """Write ``files`` and the camera files into ``folder`` (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in files:
        target = folder / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            os.fchmod(fd, 0o600 if item.private else 0o644)
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
    files = images.project_files(project, extra)
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
    app = fleet_app(plan, options, refs["serve"], node_refs, serve_args, platform)
    out = (render or _renderer(options, project))(app, client)
    written = write_bundle(Path(options.output_dir), out, app)
    return ExportResult(app, written, built, pushed, time.monotonic() - t0)


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
        )
    if options.target == "greengrass":
        from panorama_cli.fleet.greengrass_bundle import render_greengrass

        return lambda app, client: render_greengrass(
            app, client, Path(options.output_dir), _account(project), bool(options.registry)
        )
    raise UserError(
        f"unknown target {options.target!r}", hint="use compose, kubernetes or greengrass"
    )
