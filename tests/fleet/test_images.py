"""The serve image's allow-list (:func:`panorama_cli.fleet.images.project_files`), without an
engine: what a user keeps inside a project (bundles, run and state folders, .git, secrets,
other packages, links) is never a file of the image; the graph, the manifests, the entry
file and the model assets are."""

from __future__ import annotations

import json
import os
from pathlib import Path

from panorama_cli.fleet.images import project_files
from panorama_cli.localrun.plan import RunOptions, build_plan
from panorama_cli.project.project import Project
from tests.localrun.helpers import ACCOUNT, PACKAGE, add_model_node, make_project, video

APP = """
import panoramasdk
node = panoramasdk.node()
"""


def test_only_what_serve_reads_goes_into_the_serve_image(tmp_path: Path) -> None:
    root = make_project(tmp_path, APP, files={"helper.py": "X = 1\n"})
    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    (package / "Dockerfile").write_text("FROM scratch\n")
    junk = {
        "fleet/secrets/camera-front-camera": "rtsp://u:pw@h/s",
        "k8s/app-secret.yaml": "pw",
        "gg/secrets/cameras.json": "{}",
        ".panorama-run/1/report.json": "{}",
        ".panorama-serve/auth/token": "t",
        ".git/config": "x",
        "secrets.txt": "pw",
        "graphs/app/notes.txt": "pw",
        "packages/123456789012-other-1.0/package.json": "{}",
        "assets/" + "0" * 64 + ".tar.gz": "not used by the graph",
    }
    for name, text in junk.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    os.symlink("/etc/hostname", package / "src" / "link.py")
    project = Project(root)
    plan = build_plan(project, RunOptions(cameras={"front_camera": video()}))
    names = [f.path for f in project_files(plan, {"panorama-cli/overrides/0-o.json": root / "x"})]
    assert names == [
        "graphs/app/graph.json",
        f"packages/{ACCOUNT}-{PACKAGE}-1.0/Dockerfile",
        f"packages/{ACCOUNT}-{PACKAGE}-1.0/descriptor.json",
        f"packages/{ACCOUNT}-{PACKAGE}-1.0/package.json",
        f"packages/{ACCOUNT}-{PACKAGE}-1.0/src/app.py",
        "panorama-cli/overrides/0-o.json",
    ], names


def _add_asset(package: Path, kind: str, uri: str) -> None:
    manifest = json.loads((package / "package.json").read_text())
    manifest["nodePackage"].setdefault("assets", []).append(
        {"name": f"{kind}_asset", "implementations": [{"type": kind, "assetUri": uri}]}
    )
    (package / "package.json").write_text(json.dumps(manifest))


def test_a_model_archive_goes_in_and_a_container_filesystem_does_not(tmp_path: Path) -> None:
    root = make_project(tmp_path, APP)
    add_model_node(root, "model_node", "x", [1, 3, 8, 8])
    model, container = "a" * 64 + ".tar.gz", "f" * 64 + ".tar.gz"
    for name in (model, container):
        (root / "assets" / name).write_text(name)
    _add_asset(root / "packages" / f"{ACCOUNT}-MODEL-1.0", "model", model)
    _add_asset(root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0", "container", container)
    plan = build_plan(Project(root), RunOptions(cameras={"front_camera": video()}))
    names = {f.path for f in project_files(plan)}
    assert f"assets/{model}" in names and f"packages/{ACCOUNT}-MODEL-1.0/descriptor.json" in names
    assert f"assets/{container}" not in names
