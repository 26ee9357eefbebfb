"""What ``panorama-cli run`` will run: the application graph plus the command line's bindings.

:func:`build_plan` reads the application graph (overrides applied) and resolves, before any
process starts or any frame is read: the business-logic nodes and their descriptor entries,
each camera node's source (``--camera NODE=SOURCE``, else ``PANORAMA_CAMERA_<NODE>``
(:mod:`.camera_env`), else its package's ``streamUrl`` default),
each parameter's typed value (override files first, then ``--param NODE=VALUE``), the model
nodes and their ``--model`` files, and the data sinks. Anything missing is one UserError line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UsageError, UserError
from panorama_cli.localrun.apps.limits import NodeLimits

if TYPE_CHECKING:
    from panorama_cli.project.appgraph import AppGraph, Node
    from panorama_cli.project.project import Package, Project, RuntimeEntry

RUNS_FOLDER = ".panorama-run"
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass
class RunOptions:
    """The knobs of one run (the CLI flags; see ``panorama-cli run --help``).

    Attributes:
        graph: graph.json to run (default: the project's).
        overrides: nodeGraphOverrides files, applied in order.
        cameras: camera node -> source (video file, image file/folder/glob, rtsp:// URL,
            /dev/videoN, ``gst:<pipeline>``).
        params: parameter node -> value (text as typed on the command line, or a Python value).
        models: model node -> model file (ONNX, TorchScript, SavedModel).
        frames: frames per camera, then the run ends (None: no limit); with no camera
            feeding the apps only together with ``duration`` (:func:`build_plan`).
        duration: seconds, then the run ends (None: no limit).
        fast: deliver every frame as fast as the app takes them (else real time, dropping).
        loop: restart files at their end.
        output_dir: the run folder (default ``<project>/.panorama-run/<timestamp>``).
        snapshot_every: also write every Nth HDMI frame as PNG (0: never).
        python: the interpreter ``python3`` runs in the app (default: this one).
        aws_profile: pass AWS credentials with this profile (None: no credentials).
        aws_endpoint_url: the app's ``AWS_ENDPOINT_URL`` (e.g. a moto server on 127.0.0.1),
            with test credentials unless ``aws_profile`` (None: AWS itself, no credentials).
        writable_app: /panorama writable (writes never reach src/) and working directory
            /panorama, which the appliance does not do (default: the appliance's read-only
            root, working directory /, see :mod:`.appliance`).
        grace_s: seconds between SIGINT, SIGTERM and SIGKILL when stopping the app.
        keep_frames: keep a copy of every HDMI frame and its overlays in memory (Python API).
        in_container: run each business-logic node in its image (:mod:`.container_app`).
        images: ``--image``: node -> image ("" -> every node); default: build-container's.
        platform: ``--platform`` the images must be (None: each image's own).
        device: ``"cpu"`` or ``"cuda"``: where model nodes run (:mod:`.devices`); with
            ``in_container``, cuda also passes the GPUs to the containers.
        deps: host mode's dependency pre-flight (:mod:`.deps`): ``"check"`` (what the
            Dockerfile installs must be importable), ``"venv"`` (a cached virtualenv of it
            per node), ``"none"``.
        limits: each business-logic node's memory, processes and storage.
        camera_env: the ``PANORAMA_CAMERA_<NODE>`` variables (:mod:`.camera_env`): sources
            of the camera nodes ``cameras`` does not bind.
    """

    graph: Path | None = None
    overrides: Sequence[Path] = ()
    cameras: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    models: Mapping[str, Path] = field(default_factory=dict)
    frames: int | None = None
    duration: float | None = None
    fast: bool = False
    loop: bool = False
    output_dir: Path | None = None
    snapshot_every: int = 0
    python: str | None = None
    aws_profile: str | None = None
    aws_endpoint_url: str | None = None
    writable_app: bool = False
    grace_s: float = 2.0
    keep_frames: bool = False
    in_container: bool = False
    images: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    device: str = "cpu"
    deps: str = "check"
    limits: NodeLimits = field(default_factory=NodeLimits)
    camera_env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class BusinessNode:
    """A business-logic node to start.

    Attributes:
        node: the graph node.
        package: its local package.
        entry: descriptor entry (interpreter, /panorama/... path).
        src: the package's src/ (mounted at /panorama).
        inputs / outputs: port name -> {"type", "connected", "value"} as the SDK sees them.
        package_json: package.json relative to the project root (for messages).
        python: this node's own interpreter (``--deps venv``: its virtualenv's), else None
            (the plan's).
    """

    node: Node
    package: Package
    entry: RuntimeEntry
    src: Path
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    package_json: str
    python: str | None = None


@dataclass
class RunPlan:
    """Everything resolved for one run (see the module docstring)."""

    project: Project
    graph: AppGraph
    options: RunOptions
    business: list[BusinessNode]
    cameras: dict[str, str]
    params: dict[str, Any]
    models: list[Node]
    sinks: list[str]
    run_dir: Path
    python: str
    notes: list[str] = field(default_factory=list)
    #: ``--device cuda``: business-logic node -> why it gets the GPU
    #: (:func:`panorama_cli.project.accelerators.gpu_reasons`); empty with ``--device cpu``.
    gpu_nodes: dict[str, str] = field(default_factory=dict)

    def media_producers(self, node: str, port: str) -> list[tuple[str, str | None]]:
        """(producer node, producer port) feeding ``node.port``, in edge order."""
        return [
            (e.producer_node, e.producer_port)
            for e in self.graph.edges_into(node, port)
            if e.producer_node in self.cameras or e.producer_node in self.business_names
        ]

    @property
    def business_names(self) -> list[str]:
        return [b.node.name for b in self.business]


#: run's NODE=... options -> (the kind of node they bind, what follows the ``=``).
BINDING_FLAGS = {
    "--camera": ("camera", "SOURCE"),
    "--param": ("parameter", "VALUE"),
    "--model": ("model", "PATH"),
}


def parse_binding(text: str, flag: str, nodes: Sequence[str] | None = None) -> tuple[str, str]:
    """``NODE=VALUE`` -> (node, value); ``nodes``: the valid node names, for the message.

    Raises:
        UsageError: no ``=`` or an empty node name (exit 2, naming ``nodes``).
    """
    node, sep, value = text.partition("=")
    if not sep or not node.strip():
        kind, what = BINDING_FLAGS.get(flag, ("", "VALUE"))
        example = f"{flag} {nodes[0] if nodes else 'NODE'}={value if sep else text}"
        named = f"{kind} nodes: {', '.join(nodes) or 'none'}; " if nodes is not None else ""
        raise UsageError(f"{flag} {text}: give NODE={what}", hint=f"{named}e.g. {example}")
    return node.strip(), value


def parse_bindings(
    values: Sequence[str], flag: str, nodes: Callable[[], Sequence[str] | None]
) -> dict[str, str]:
    """``--camera``/``--param``/``--model`` values -> node -> value.

    Args:
        values: the option's values as typed (``NODE=VALUE`` each).
        flag: the option (a key of :data:`BINDING_FLAGS`).
        nodes: called only for a message: the graph's nodes of that kind (None: unknown).

    Raises:
        UsageError: a value without ``NODE=``, or one node given twice (exit 2).
    """
    bound: dict[str, str] = {}
    for text in values:
        name, sep, _ = text.partition("=")
        if not sep or not name.strip():
            parse_binding(text, flag, nodes())  # raises, naming the nodes
        node, value = parse_binding(text, flag)
        if node in bound:
            raise UsageError(f"{flag} {node}=... given twice", hint=f"give {node} one value")
        if value.startswith("@") and flag in ("--camera", "--param"):
            value = value_from_file(flag, node, value[1:])
        bound[node] = value
    return bound


def value_from_file(flag: str, node: str, path: str) -> str:
    """``NODE=@FILE`` (``flag``: the option or variable, for the message): the file's text,
    surrounding whitespace removed (a secret's file: an RTSP URL with credentials never
    appears on a command line, a manifest or ``ps``; a ConfigMap's file for a parameter).

    Raises:
        UsageError: the file cannot be read.
    """
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{flag} {node}=@{path}: cannot read the file ({exc.strerror or exc})",
            hint="give the path of a readable file that holds the value",
        ) from None


def node_names(
    project: Project, flag: str, graph: Path | None, overrides: Sequence[Path]
) -> list[str] | None:
    """The application graph's nodes that ``flag`` (a key of :data:`BINDING_FLAGS`) binds,
    in graph order; None when the graph does not load (its own error comes later)."""
    from panorama_cli.project.appgraph import AppGraph, NodeKind

    kinds = {"--camera": NodeKind.CAMERA, "--param": NodeKind.PARAMETER, "--model": NodeKind.MODEL}
    try:
        loaded = AppGraph.load(project, list(overrides), graph)
    except UserError:
        return None
    return [n.name for n in loaded.nodes.values() if n.kind == kinds[flag]]


def parameter_value(type_name: str, value: Any, where: str) -> Any:
    """``value`` (command-line text or a Python value) as the parameter type's Python value:
    int32 -> int, float32 -> float (``60`` -> 60.0), boolean -> bool, string -> str.

    Raises:
        UsageError: it is not a value of that type (exit 2).
    """
    try:
        if type_name == "int32":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if type_name == "float32":
            return float(value)
        if type_name == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise UsageError(
            f"{where}: {value!r} is not a {type_name} value",
            hint={"boolean": "use true or false"}.get(type_name, f"give a {type_name}"),
        ) from None


def default_run_dir(project: Project) -> Path:
    """``<project>/.panorama-run/<YYYYmmdd-HHMMSS>`` (not created: see :func:`create_run_dir`)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return project.root / RUNS_FOLDER / stamp


def create_run_dir(plan: RunPlan) -> Path:
    """Create the run folder; returns it (``plan.run_dir`` is updated).

    ``--output-dir`` is used as it is (created when missing, reused when there). The default
    folder is made atomically and is this run's alone: ``mkdir`` without ``exist_ok``, and on
    a clash (another run started in the same second) ``<stamp>-2``, ``<stamp>-3``, ...

    Raises:
        UserError: the folder cannot be created.
    """
    try:
        if plan.options.output_dir:
            plan.run_dir.mkdir(parents=True, exist_ok=True)
            return plan.run_dir
        base = plan.run_dir
        base.parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            plan.run_dir = candidate
            return candidate
        raise FileExistsError(f"{base}-N: 10000 run folders in the same second")
    except OSError as exc:
        raise UserError(f"cannot create the run folder {plan.run_dir}: {exc}") from None


def build_plan(project: Project, options: RunOptions) -> RunPlan:
    """Resolve ``options`` against the project's application graph (see the module docstring).

    Raises:
        UsageError: a binding names no such node, a camera has no source, a value does not
            fit its parameter type, --frames with no camera to count and no --duration
            (exit 2).
        UserError: the graph cannot be built, or a business-logic node has no local package /
            runtime descriptor / src folder.
    """
    from panorama_cli.project.appgraph import AppGraph, NodeKind

    graph = AppGraph.load(project, list(options.overrides), options.graph)
    nodes = graph.nodes
    params = _parameters(graph, options.params)
    camera_nodes = [n.name for n in nodes.values() if n.kind == NodeKind.CAMERA]
    from panorama_cli.localrun.camera_env import env_sources

    bound = {**env_sources(camera_nodes, options.camera_env, options.cameras), **options.cameras}
    cameras = _cameras(graph, camera_nodes, bound, params)
    models = [n for n in nodes.values() if n.kind == NodeKind.MODEL]
    for name in options.models:
        if name not in [m.name for m in models]:
            raise UsageError(
                f"--model {name}=...: unknown model node {name!r}",
                hint=f"model nodes: {', '.join(m.name for m in models) or 'none'}",
            )
    business = [
        _business(project, graph, node, params, cameras)
        for node in nodes.values()
        if node.kind == NodeKind.BUSINESS_LOGIC
    ]
    if not business:
        raise UserError(
            f"{project.rel(graph.path)} has no business-logic node to run",
            hint="add a container package (panorama-cli create-package) and its node",
        )
    sinks = [n.name for n in nodes.values() if n.kind == NodeKind.DATA_SINK]
    plan = RunPlan(
        project=project,
        graph=graph,
        options=options,
        business=business,
        cameras=cameras,
        params=params,
        models=models,
        sinks=sinks,
        run_dir=Path(options.output_dir) if options.output_dir else default_run_dir(project),
        python=options.python or sys.executable,
    )
    if options.device == "cuda":
        from panorama_cli.project.accelerators import gpu_reasons

        plan.gpu_nodes = gpu_reasons(graph, project.load_package, plan.business_names)
    _check_frames(plan)
    _note_ignored_instructions(plan)
    if options.in_container:  # the image's python3 runs; ports: container_images.port_notes
        return plan
    _note_python_versions(plan)
    for rule in graph.routing_rules:
        plan.notes.append(
            f"networkRoutingRules: node {rule.node} binds its containerPort {rule.container_port}"
            f" directly on this machine (host port {rule.host_port} is not mapped in this mode)"
        )
    return plan


def _check_frames(plan: RunPlan) -> None:
    """``--frames`` counts the frames of the cameras that feed the apps; with none (an app
    without a camera, which cannot make frames of its own) there is nothing to count: with
    ``--duration`` too a note says the run ends there (or when the app exits), without it the
    run would never end at ``--frames``.

    Raises:
        UsageError: ``--frames`` without ``--duration`` and no camera feeds a business-logic
            node (exit 2).
    """
    options = plan.options
    if options.frames is None:
        return
    business = set(plan.business_names)
    for camera in plan.cameras:
        if any(e.consumer_node in business for e in plan.graph.edges_from(camera)):
            return
    what = f"--frames {options.frames}: no camera feeds the app, so there are no frames to count"
    if options.duration is None:
        raise UsageError(
            what,
            hint="end the run with --duration SECONDS, or leave --frames out (the run then "
            "ends when the app exits, or at Ctrl-C)",
        )
    plan.notes.append(
        f"{what}: the run ends after --duration {options.duration:g} s or when the app exits"
    )


def _note_ignored_instructions(plan: RunPlan) -> None:
    """One note per node whose Dockerfile has runtime instructions (ENV, WORKDIR, USER, CMD,
    ...): the appliance ignores them, and so does the run (:mod:`.appliance`)."""
    from panorama_cli.localrun.apps.appliance import ignored_note

    for business in plan.business:
        dockerfile = business.package.folder / "Dockerfile"
        note = ignored_note(business.node.name, dockerfile) if dockerfile.is_file() else None
        if note:
            plan.notes.append(note)


def _parameters(graph: AppGraph, overrides: Mapping[str, Any]) -> dict[str, Any]:
    from panorama_cli.project.appgraph import NodeKind

    values = {n.name: n.value for n in graph.nodes.values() if n.kind == NodeKind.PARAMETER}
    for name, value in overrides.items():
        if name not in values:
            raise UsageError(
                f"--param {name}=...: unknown parameter node {name!r}",
                hint=f"parameter nodes: {', '.join(values) or 'none'}",
            )
        values[name] = parameter_value(graph.nodes[name].interface, value, f"--param {name}")
    return values


def _cameras(
    graph: AppGraph, camera_nodes: list[str], bound: Mapping[str, str], params: dict[str, Any]
) -> dict[str, str]:
    from panorama_cli.localrun.camera_env import env_name
    from panorama_cli.project.appgraph import NodeKind

    sources: dict[str, str] = {}
    for name, source in bound.items():
        node = graph.nodes.get(name)
        if node is None or node.kind not in (NodeKind.CAMERA, NodeKind.UNKNOWN):
            raise UsageError(
                f"--camera {name}=...: unknown camera node {name!r}",
                hint=f"camera nodes: {', '.join(camera_nodes) or 'none'}",
            )
        if not source:
            raise UsageError(f"--camera {name}=: no source", hint="give a video file or URL")
        sources[name] = source
    missing = []
    for name in camera_nodes:
        if name in sources:
            continue
        url = _stream_url(graph, name, params)
        if url:
            sources[name] = url
        else:
            missing.append(name)
    if missing:
        raise UsageError(
            f"camera node(s) without a source: {', '.join(missing)}",
            hint=" ".join(f"--camera {m}=VIDEO_OR_URL" for m in missing)
            + " (a video file, image folder, rtsp:// URL or /dev/videoN), or set "
            + " ".join(env_name(m) for m in missing),
        )
    return {name: sources[name] for name in [*camera_nodes, *sources] if name in sources}


def _stream_url(graph: AppGraph, camera: str, params: dict[str, Any]) -> str | None:
    for edge in graph.edges_into(camera, "streamUrl"):
        value = params.get(edge.producer_node)
        if isinstance(value, str) and value:
            return value
    port = graph.nodes[camera].inputs.get("streamUrl")
    default = port.default if port is not None else None
    return default if isinstance(default, str) and default else None


def _business(
    project: Project,
    graph: AppGraph,
    node: Node,
    params: dict[str, Any],
    cameras: dict[str, str],
) -> BusinessNode:
    from panorama_cli.project.appgraph import NodeKind

    if not node.is_local or node.package_folder is None:
        raise UserError(
            f"node {node.name}: package {node.package} is not in "
            f"{project.rel(project.packages_dir)}/",
            hint="run needs the code: import or create the package in this project",
        )
    package = project.load_package(node.package_folder)
    entry = package.runtime_entry
    if entry is None:
        raise UserError(
            f"node {node.name}: {project.rel(package.descriptor_path)} has no "
            "runtimeDescriptor.entry {path, name}",
            hint='e.g. {"path": "python3", "name": "/panorama/app.py"}',
        )
    src = package.folder / "src"
    if not src.is_dir():
        raise UserError(
            f"node {node.name}: {project.rel(src)} does not exist (it becomes /panorama)",
            hint="put the application code in the package's src/ folder",
        )
    inside = entry.entry.removeprefix("/panorama/") if entry.entry.startswith("/panorama/") else ""
    if inside and not (src / inside).is_file():
        raise UserError(
            f"node {node.name}: the descriptor's entry {entry.entry} is not in "
            f"{project.rel(src)}/ ({project.rel(package.descriptor_path)})",
            hint=f"add {project.rel(src / inside)} or fix runtimeDescriptor.entry.name",
        )
    inputs: dict[str, dict[str, Any]] = {}
    for name, port in node.inputs.items():
        edges = graph.edges_into(node.name, name)
        spec: dict[str, Any] = {"type": port.type, "connected": bool(edges)}
        if port.type != "media":
            value = port.default
            for edge in edges:
                producer = graph.nodes.get(edge.producer_node)
                if producer is not None and producer.kind == NodeKind.PARAMETER:
                    value = params.get(edge.producer_node)
            from panorama_cli.project.appgraph import typed_value

            spec["value"] = typed_value(port.type, value)
        inputs[name] = spec
    outputs = {
        name: {"type": port.type, "connected": bool(graph.edges_from(node.name, name))}
        for name, port in node.outputs.items()
    }
    return BusinessNode(
        node=node,
        package=package,
        entry=entry,
        src=src,
        inputs=inputs,
        outputs=outputs,
        package_json=project.rel(package.manifest_path),
    )


def _note_python_versions(plan: RunPlan) -> None:
    """A note for each entry that names another python3.X than the one that will run it."""
    import re

    from panorama_cli.localrun.apps.supervisor import python_version

    wanted = {
        b.node.name: m.group(1)
        for b in plan.business
        if (m := re.fullmatch(r"python(3\.\d+)", Path(b.entry.interpreter).name))
    }
    if not wanted:
        return
    running = python_version(plan.python)
    for node, version in wanted.items():
        if version != running:
            plan.notes.append(
                f"node {node}: its entry asks for python{version}; running Python {running} "
                f"({plan.python}); pass --python to choose another interpreter"
            )
