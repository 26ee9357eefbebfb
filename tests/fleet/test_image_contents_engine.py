"""What a bundle's images hold, checked in the real engine: ``docker save`` of every image a
compose bundle references, every layer searched for the camera password.

The project is exported twice, the second time with what a user ends up keeping inside it:
the first bundle (its 0600 camera secret), a Kubernetes Secret, a Greengrass
``secrets/cameras.json``, a run folder, a serve state folder, ``.git`` and a stray secrets
file, each holding the password. None of it may reach an image: the serve image is built
from an allow-list (the graph, the packages' manifests, the entry file, the assets the graph
uses). The serve image's size is asserted (it is what every box pulls) and printed.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.fleet.engine_support import cli

pytestmark = pytest.mark.docker

PASSWORD = "leak-7c1d9e-hunter2"
SECRET_URL = f"rtsp://admin:{PASSWORD}@10.0.0.9:554/stream1"
#: The serve image (runtime + project): what every box pulls.
SERVE_IMAGE_LIMIT = 1_200_000_000
CHUNK = 1 << 20


def _holds(stream: Any, needle: bytes) -> bool:
    """Whether ``needle`` is in ``stream`` (read in chunks, overlapping by its length)."""
    tail = b""
    while block := stream.read(CHUNK):
        if needle in tail + block:
            return True
        tail = block[-len(needle) :]
    return False


def _layers_holding(docker_client: Any, ref: str, needle: bytes, folder: Path) -> list[str]:
    """The members of ``docker save ref`` (layers, config, manifests) that contain ``needle``;
    a layer's files are searched one by one (docker save's layers are plain tars)."""
    archive = folder / "image.tar"
    with archive.open("wb") as out:
        for chunk in docker_client.images.get(ref).save(named=False):
            out.write(chunk)
    found = []
    with tarfile.open(archive) as outer:
        for member in outer:
            if not member.isfile():
                continue
            data = outer.extractfile(member)
            assert data is not None
            if _holds(data, needle):
                found.append(member.name)
                continue
            data.seek(0)
            try:
                with tarfile.open(fileobj=data, mode="r:*") as layer:
                    for item in layer:
                        inner = layer.extractfile(item) if item.isfile() else None
                        if inner is not None and _holds(inner, needle):
                            found.append(f"{member.name}:{item.name}")
            except tarfile.TarError:
                pass  # not a layer (config JSON, manifest): searched as bytes above
    archive.unlink()
    return found


def _leftovers(root: Path) -> list[Path]:
    """What a user keeps inside a project, each file holding the camera password."""
    files = {
        "k8s/app-secret.yaml": f"stringData:\n  camera-front: {SECRET_URL}\n",
        "gg/secrets/cameras.json": f'{{"front_camera": "{SECRET_URL}"}}\n',
        ".panorama-run/20240101-000000/report.json": f'{{"camera": "{SECRET_URL}"}}\n',
        ".panorama-serve/auth/cameras.env": f"PANORAMA_CAMERA_FRONT_CAMERA='{SECRET_URL}'\n",
        ".git/config": f'[remote "origin"]\n  url = https://u:{PASSWORD}@git.example\n',
        "secrets.txt": SECRET_URL + "\n",
        "graphs/notes.txt": SECRET_URL + "\n",
    }
    made = []
    for name, text in files.items():
        path = root / name
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        made.append(path)
    return made


def _images(bundle: Path) -> dict[str, str]:
    compose = yaml.safe_load((bundle / "compose.yaml").read_text())
    return {name: service["image"] for name, service in compose["services"].items()}


def test_no_image_of_a_bundle_holds_the_camera_password(
    project: Path, docker_client: Any, base_image_amd64: str, tmp_path: Path
) -> None:
    first = project / "fleet-first"
    second = project / "fleet-second"
    made: list[Path] = []
    try:
        cli(project, "export", "--target", "compose", "--output-dir", str(first), "--camera",
            f"front_camera={SECRET_URL}", "--runtime-base", base_image_amd64)  # fmt: skip
        assert any(PASSWORD in p.read_text() for p in first.rglob("*") if p.is_file())
        made = _leftovers(project)
        cli(project, "export", "--target", "compose", "--output-dir", str(second), "--camera",
            f"front_camera={SECRET_URL}", "--runtime-base", base_image_amd64)  # fmt: skip
        images = _images(second)
        assert images == _images(first)  # the leftovers change no image
        sizes = {}
        for service, ref in sorted(images.items()):
            sizes[service] = docker_client.images.get(ref).attrs["Size"]
            assert _layers_holding(docker_client, ref, PASSWORD.encode(), tmp_path) == [], ref
        listing = docker_client.containers.run(
            images["serve"], entrypoint=["find", "/opt/panorama-cli/project", "-type", "f"],
            remove=True, network_disabled=True,
        ).decode()  # fmt: skip
        names = {line.split("/", 5)[-1] for line in listing.split()}
        assert not any(n.startswith(("fleet-", "k8s/", "gg/", ".")) for n in names), names
        assert any(n.endswith("/graph.json") for n in names), names
        print("image sizes:", {k: f"{v / 1e6:.0f} MB" for k, v in sizes.items()})
        assert sizes["serve"] < SERVE_IMAGE_LIMIT, sizes
    finally:
        for path in made:
            path.unlink(missing_ok=True)
        for folder in (first, second, project / "k8s", project / "gg", project / ".git"):
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(project / ".panorama-run" / "20240101-000000", ignore_errors=True)
