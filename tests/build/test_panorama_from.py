"""Dockerfiles FROM a Panorama application image: which FROM lines are rewritten to the local
stand-in (literal FROMs with any tag, ARG BASE_IMAGE defaults, multi-stage builds), which stay
as written (other images, earlier stages, ``--build-arg BASE_IMAGE``), and that the package's
own Dockerfile is never written. The engine is a small in-memory stand-in here: what it holds
is the only input; the real builds are in tests/e2e/test_panorama_base.py."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from panorama_cli.build import panorama_from
from panorama_cli.build.docker_build import _build_failure
from panorama_cli.build.panorama_from import from_lines, is_panorama_image, panorama_base, rewrite
from panorama_cli.errors import UserError

STAND_IN = "panorama-cli/base:panorama-amd64"
PANORAMA = "public.ecr.aws/panorama/panorama-application"


class Engine:
    """``client.images.get`` over a dict reference -> architecture."""

    def __init__(self, images: dict[str, str]):
        self.held = images
        self.images = self
        self.closed = False

    def get(self, reference: str) -> Any:
        if reference not in self.held:
            raise docker.errors.ImageNotFound(reference)
        return SimpleNamespace(attrs={"Architecture": self.held[reference]})

    def close(self) -> None:
        self.closed = True


def _build(
    tmp_path: Path,
    text: str,
    *,
    engine: Engine | None = None,
    build_args: dict[str, str] | None = None,
    base_image: str | None = None,
) -> tuple[str | None, list[str]]:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    notes: list[str] = []
    with panorama_base(
        dockerfile,
        build_args or {},
        "linux/amd64",
        base_image=base_image,
        client=engine or Engine({STAND_IN: "amd64"}),
        on_note=notes.append,
    ) as copy:
        rewritten = copy.read_text() if copy else None
        if copy:
            assert copy.parent != tmp_path and not str(copy).startswith(str(tmp_path))
    assert dockerfile.read_text() == text  # the package's file is never written
    assert copy is None or not copy.exists()  # the copy is gone after the build
    return rewritten, notes


@pytest.mark.parametrize(
    "reference",
    [
        PANORAMA,
        f"{PANORAMA}:latest",
        f"{PANORAMA}:1.2.0-py3.8",
        f"{PANORAMA}:1.1.0-arm64v8",
        f"{PANORAMA}/python3.8/aarch64:latest",
        f"{PANORAMA}@sha256:{'a' * 64}",
    ],
)
def test_panorama_references_are_recognised(reference: str) -> None:
    assert is_panorama_image(reference)


@pytest.mark.parametrize(
    "reference",
    ["python:3.8", "public.ecr.aws/panorama/other", f"{PANORAMA}-gpu", f"x/{PANORAMA}", ""],
)
def test_other_references_are_not(reference: str) -> None:
    assert not is_panorama_image(reference)


@pytest.mark.parametrize("tag", ["", ":latest", ":1.2.0-py3.8", "/python3.8/aarch64:latest"])
def test_literal_from_with_any_tag_builds_on_the_stand_in(tmp_path: Path, tag: str) -> None:
    text = f"FROM {PANORAMA}{tag}\nRUN pip3 install opencv-python boto3\nCOPY src /panorama\n"
    rewritten, notes = _build(tmp_path, text)
    assert rewritten == (
        f"FROM {STAND_IN}\nRUN pip3 install opencv-python boto3\nCOPY src /panorama\n"
    )
    assert len(notes) == 1
    assert f"FROM {PANORAMA}{tag} (Dockerfile line 1) builds on {STAND_IN}" in notes[0]
    assert "base-image --flavor panorama" in notes[0] and "--base-image IMAGE" in notes[0]


def test_arg_base_image_default_builds_on_the_stand_in(tmp_path: Path) -> None:
    text = f"ARG BASE_IMAGE={PANORAMA}:1.2.0-py3.8\nFROM ${{BASE_IMAGE}}\nCOPY src /panorama\n"
    rewritten, notes = _build(tmp_path, text)
    assert rewritten is not None
    assert rewritten.splitlines() == [
        f"ARG BASE_IMAGE={PANORAMA}:1.2.0-py3.8",
        f"FROM {STAND_IN}",
        "COPY src /panorama",
    ]
    assert len(notes) == 1 and "(Dockerfile line 2)" in notes[0]


def test_build_arg_base_image_is_built_as_written(tmp_path: Path) -> None:
    text = f"ARG BASE_IMAGE={PANORAMA}\nFROM ${{BASE_IMAGE}}\n"
    rewritten, notes = _build(tmp_path, text, build_args={"BASE_IMAGE": "mine/base:1"})
    assert rewritten is None and notes == []


def test_multi_stage_keeps_stage_names_flags_and_other_images(tmp_path: Path) -> None:
    text = (
        "# syntax comment\n"
        f"FROM --platform=linux/amd64 {PANORAMA}:latest AS builder\n"
        "RUN echo build \\\n"
        "    && echo more\n"
        "FROM python:3.8-slim AS tools\n"
        "FROM scratch AS empty\n"
        "from \\\n"
        f"    {PANORAMA}\n"
        "COPY --from=builder /x /x\n"
        "FROM builder\n"
    )
    rewritten, notes = _build(tmp_path, text)
    assert rewritten is not None
    assert rewritten.splitlines() == [
        "# syntax comment",
        f"FROM --platform=linux/amd64 {STAND_IN} AS builder",
        "RUN echo build \\",
        "    && echo more",
        "FROM python:3.8-slim AS tools",
        "FROM scratch AS empty",
        f"FROM {STAND_IN}",
        "COPY --from=builder /x /x",
        "FROM builder",
    ]
    assert len(notes) == 1 and "(Dockerfile lines 2, 7)" in notes[0]


@pytest.mark.parametrize(
    "text",
    [
        "FROM python:3.8\nRUN pip install numpy\n",
        "ARG BASE_IMAGE=panorama-cli/base:bookworm-amd64\nFROM ${BASE_IMAGE}\n",
        "FROM scratch\nCOPY x /x\n",
        "ARG UNSET\nFROM ${UNSET}\n",
    ],
)
def test_other_images_are_built_as_written(tmp_path: Path, text: str) -> None:
    engine = Engine({})  # nothing is looked up for them
    assert _build(tmp_path, text, engine=engine) == (None, [])


def test_base_image_option_replaces_panorama_froms(tmp_path: Path) -> None:
    text = f"FROM {PANORAMA}:latest AS a\nFROM python:3.8\nFROM {PANORAMA}\n"
    rewritten, notes = _build(tmp_path, text, engine=Engine({}), base_image="my/base:2")
    assert rewritten == "FROM my/base:2 AS a\nFROM python:3.8\nFROM my/base:2\n"
    assert len(notes) == 1 and "builds on my/base:2, --base-image" in notes[0]


def test_panorama_image_already_in_the_engine_is_used(tmp_path: Path) -> None:
    text = f"FROM {PANORAMA}:1.2.0-py3.8\n"
    engine = Engine({f"{PANORAMA}:1.2.0-py3.8": "amd64"})
    assert _build(tmp_path, text, engine=engine) == (None, [])
    # ... but not one for another architecture
    engine = Engine({f"{PANORAMA}:1.2.0-py3.8": "arm64", STAND_IN: "amd64"})
    rewritten, _ = _build(tmp_path, text, engine=engine)
    assert rewritten == f"FROM {STAND_IN}\n"


def test_missing_stand_in_is_one_line_naming_the_command(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {PANORAMA}\nCOPY src /panorama\n")
    engine = Engine({"panorama-cli/base:panorama-arm64": "arm64"})  # another platform's
    with pytest.raises(UserError) as caught:
        with panorama_base(tmp_path / "Dockerfile", {}, "linux/amd64", client=engine):
            pytest.fail("no build without a base")
    message = caught.value.message
    assert "\n" not in message
    assert f"{PANORAMA} (Dockerfile line 1) is not in the local engine" in message
    assert "`panorama-cli base-image --flavor panorama --platform linux/amd64`" in message
    assert "--base-image IMAGE" in str(caught.value.hint)


def test_linked_or_huge_dockerfile_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(f"FROM {PANORAMA}\n")
    package = tmp_path / "pkg"
    package.mkdir()
    os.symlink(secret, package / "Dockerfile")
    with pytest.raises(UserError, match="cannot read the Dockerfile"):
        panorama_from.read_dockerfile(package / "Dockerfile")
    (tmp_path / "big").write_bytes(b"#" * (panorama_from.MAX_DOCKERFILE_BYTES + 1))
    with pytest.raises(UserError, match="larger than"):
        panorama_from.read_dockerfile(tmp_path / "big")


def test_from_lines_and_rewrite_keep_everything_else() -> None:
    text = "ARG V=1\nFROM a:${V} AS x\nRUN true\nFROM x"  # no newline at the end
    found = from_lines(text)
    assert [(f.line, f.image, f.stage) for f in found] == [(2, "a:1", "x"), (4, "x", None)]
    assert rewrite(text, found[1:], "b") == "ARG V=1\nFROM a:${V} AS x\nRUN true\nFROM b\n"


def test_failed_from_step_names_the_image_an_arg_stood_for(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"ARG BASE_IMAGE={PANORAMA}\nFROM --platform=linux/amd64 $BASE_IMAGE\n")
    failure = _build_failure(
        "no such host", "Step 2/2 : FROM --platform=linux/amd64 $BASE_IMAGE", [], dockerfile, {}
    )
    assert str(failure.hint).startswith(f"{PANORAMA} is not in the local engine")
    assert "--flavor panorama" in str(failure.hint)
    failure = _build_failure(
        "no such host", "Step 2/2 : FROM $BASE_IMAGE", [], dockerfile, {"BASE_IMAGE": "my/b:1"}
    )
    assert str(failure.hint).startswith("my/b:1 is not in the local engine")
