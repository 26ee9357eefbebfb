"""Projects for runner tests: one container package (the app under test) + cameras + HDMI."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support import shared
from tests.support.ci import unavailable
from tests.support.paths import APPS, VIDEO

ACCOUNT = "123456789012"
PACKAGE = "APP"


def require(path: Path) -> Path:
    """``path`` (shared test data); skip with one reason when absent, fail under CI=true
    (:func:`tests.support.shared.require`)."""
    shared.require(path)
    return path


def require_sandbox() -> None:
    """Skip (fail under CI=true) where neither bubblewrap nor ``unshare`` as root can make
    the app's mount namespace: ``run`` then stops with one error line, nothing to test."""
    from panorama_cli.localrun.apps import sandbox

    if sandbox.mode():
        return
    unavailable("no mount namespace here (bubblewrap missing or not allowed, not root)")


def video() -> str:
    return str(require(VIDEO))


def _dump(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n")


def _dump_package(
    folder: Path,
    name: str,
    category: str,
    asset: str,
    inputs: list[dict[str, str]],
    description: str | None = None,
) -> None:
    """``folder/package.json``: node package ``name`` version 1.0, no assets, one interface
    ``interface`` of ``category`` with ``inputs`` and one output ``video_out`` (media)."""
    body: dict[str, object] = {"envelopeVersion": "2021-01-01", "name": name, "version": "1.0"}
    if description is not None:
        body["description"] = description
    body["assets"] = []
    body["interfaces"] = [
        {
            "name": "interface",
            "category": category,
            "asset": asset,
            "inputs": inputs,
            "outputs": [{"name": "video_out", "type": "media"}],
        }
    ]
    _dump(folder / "package.json", {"nodePackage": body})


def _dump_runtime_descriptor(folder: Path, entry: tuple[str, str]) -> None:
    """``folder/descriptor.json``: a runtime descriptor whose entry is (path, name)."""
    _dump(
        folder / "descriptor.json",
        {
            "runtimeDescriptor": {
                "envelopeVersion": "2021-01-01",
                "entry": {"path": entry[0], "name": entry[1]},
            }
        },
    )


def _dump_graph(root: Path, name: str, packages: list, nodes: list, edges: list) -> None:
    """``root/graphs/name/graph.json`` with these packages, nodes and edges."""
    _dump(
        root / "graphs" / name / "graph.json",
        {
            "nodeGraph": {
                "envelopeVersion": "2021-01-01",
                "packages": packages,
                "nodes": nodes,
                "edges": edges,
            }
        },
    )


def make_project(
    parent: Path,
    app: str,
    *,
    entry: tuple[str, str] = ("python3", "/panorama/app.py"),
    files: Mapping[str, str] | None = None,
    cameras: Sequence[str] = ("front_camera",),
    params: Mapping[str, tuple[str, object]] | None = None,
    hdmi: bool = True,
    name: str = "app",
) -> Path:
    """A project ``parent/name`` whose node ``code_node`` runs ``app`` (src/app.py).

    Args:
        app: the entry's Python source (dedented).
        entry: descriptor entry (path, name).
        files: more files under src/ (relative path -> text).
        cameras: camera nodes (panorama::abstract_rtsp_media_source) feeding code_node.video_in.
        params: parameter node -> (type, value), each wired to code_node.<node>.
        hdmi: add the HDMI data sink fed by code_node.video_out.
    """
    require_sandbox()
    root = parent / name
    params = dict(params if params is not None else {"threshold": ("float32", 60)})
    for folder in ("assets", "packages"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    inputs = [{"name": "video_in", "type": "media"}]
    inputs += [{"name": n, "type": t} for n, (t, _) in params.items()]
    _dump_package(
        package, PACKAGE, "business_logic", "code_asset", inputs, description="app under test"
    )
    _dump_runtime_descriptor(package, entry)
    src = package / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / Path(entry[1]).name).write_text(textwrap.dedent(app))
    for rel, text in (files or {}).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(textwrap.dedent(text))
    packages = [{"name": f"{ACCOUNT}::{PACKAGE}", "version": "1.0"}]
    nodes: list[dict[str, object]] = [
        {"name": "code_node", "interface": f"{ACCOUNT}::{PACKAGE}.interface"}
    ]
    edges = []
    if cameras:
        packages.append({"name": "panorama::abstract_rtsp_media_source", "version": "1.0"})
    for camera in cameras:
        nodes.append(
            {
                "name": camera,
                "interface": "panorama::abstract_rtsp_media_source.rtsp_v1_interface",
                "overridable": True,
            }
        )
        edges.append({"producer": f"{camera}.video_out", "consumer": "code_node.video_in"})
    if hdmi:
        packages.append({"name": "panorama::hdmi_data_sink", "version": "1.0"})
        nodes.append({"name": "output_node", "interface": "panorama::hdmi_data_sink.hdmi0"})
        edges.append({"producer": "code_node.video_out", "consumer": "output_node.video_in"})
    for node, (type_name, value) in params.items():
        nodes.append({"name": node, "interface": type_name, "value": value})
        edges.append({"producer": node, "consumer": f"code_node.{node}"})
    _dump_graph(root, name, packages, nodes, edges)
    return root


def copy_sample(parent: Path, app: str) -> Path:
    """The official aws-panorama-sample copied to ``parent`` with ``app`` as its code."""
    require_sandbox()
    root = parent / "aws-panorama-sample"
    shutil.copytree(require(APPS / "aws-panorama-sample"), root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    src = root / "packages" / f"{ACCOUNT}-SAMPLE_CODE-1.0" / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "application.py").write_text(textwrap.dedent(app))
    return root


def processes_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose environment holds ``marker``, or, for a path such as
    a run's ``.bin`` folder, whose mount namespace binds it (an app in its sandbox: its
    environment holds nothing of the host's paths) (a /proc scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            binds = [line.split()[3] for line in (entry / "mountinfo").read_text().splitlines()]
        except (OSError, IndexError):
            continue
        bound = any(r.count("/") >= 2 and marker.endswith(r) for r in binds)
        if (marker.encode() in environ or bound) and state != "Z":
            found.append(int(entry.name))
    return found


def make_chain_project(parent: Path, apps: Mapping[str, str], name: str = "chain") -> Path:
    """A project whose business-logic nodes run in a chain: camera -> node 1 -> node 2 ... ->
    HDMI. ``apps``: node name -> its src/app.py source; each node has video_in -> video_out."""
    require_sandbox()
    root = parent / name
    (root / "assets").mkdir(parents=True, exist_ok=True)
    packages = [
        {"name": "panorama::abstract_rtsp_media_source", "version": "1.0"},
        {"name": "panorama::hdmi_data_sink", "version": "1.0"},
    ]
    nodes: list[dict[str, object]] = [
        {"name": "cam", "interface": "panorama::abstract_rtsp_media_source.rtsp_v1_interface"},
        {"name": "output_node", "interface": "panorama::hdmi_data_sink.hdmi0"},
    ]
    producer, edges = "cam.video_out", []
    for index, (node, app) in enumerate(apps.items()):
        package_name = f"STAGE{index}"
        folder = root / "packages" / f"{ACCOUNT}-{package_name}-1.0"
        _dump_package(
            folder, package_name, "business_logic", "code", [{"name": "video_in", "type": "media"}]
        )
        _dump_runtime_descriptor(folder, ("python3", "/panorama/app.py"))
        (folder / "src").mkdir()
        (folder / "src" / "app.py").write_text(textwrap.dedent(app))
        packages.append({"name": f"{ACCOUNT}::{package_name}", "version": "1.0"})
        nodes.append({"name": node, "interface": f"{ACCOUNT}::{package_name}.interface"})
        edges.append({"producer": producer, "consumer": f"{node}.video_in"})
        producer = f"{node}.video_out"
    edges.append({"producer": producer, "consumer": "output_node.video_in"})
    _dump_graph(root, name, packages, nodes, edges)
    return root


def add_model_node(
    root: Path, node: str, input_name: str, shape: Sequence[int], package: str = "MODEL"
) -> None:
    """Add a local ml-model package (ONNX descriptor, one input) and its node ``node`` to the
    project's graph (the model file itself comes with ``--model``)."""
    folder = root / "packages" / f"{ACCOUNT}-{package}-1.0"
    _dump_package(
        folder, package, "ml_model", "model_asset", [{"name": "video_in", "type": "media"}]
    )
    _dump(
        folder / "descriptor.json",
        {
            "mlModelDescriptor": {
                "envelopeVersion": "2021-01-01",
                "framework": "ONNX",
                "inputs": [{"name": input_name, "shape": list(shape)}],
            }
        },
    )
    [graph_path] = (root / "graphs").glob("*/graph.json")
    graph = json.loads(graph_path.read_text())
    graph["nodeGraph"]["packages"].append({"name": f"{ACCOUNT}::{package}", "version": "1.0"})
    graph["nodeGraph"]["nodes"].append(
        {"name": node, "interface": f"{ACCOUNT}::{package}.interface"}
    )
    graph_path.write_text(json.dumps(graph, indent=4))


def inject_backpack(root: Path) -> None:
    """Put backpack into the app package's src/ (as create-package does)."""
    from panorama_cli.project import backpack_injection

    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    for rel, data in backpack_injection.package_files().items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_bytes(data)


#: All a host-mode app's environment holds (the appliance's allow-list; PWD comes from the
#: python3 shim's sh; an --in-container app has the same without PWD).
APP_ENV = [
    "AWS_CONFIG_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AppGraph_Uid",
    "HOME",
    "LANG",
    "PANORAMA_LOCALRUN_NODE",
    "PANORAMA_LOCALRUN_SOCKET",
    "PANORAMA_LOCALRUN_TOKEN",  # the node's own control token, never the run's key
    "PATH",
    "PWD",
    "PYTHONPATH",
    "PYTHONUNBUFFERED",
]
