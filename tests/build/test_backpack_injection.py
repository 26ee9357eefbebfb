"""backpack in generated container packages, and the Dockerfile stages (no Docker needed).

* create-package copies the shipped backpack/ (data/ included, no __pycache__) to
  src/backpack/ with an INJECTED.json stamp; --no-backpack does not; update-backpack refreshes an
  outdated copy (old → new), is a no-op when current, refuses edited copies unless --force,
  and a failure leaves the package byte-identical.
* --gstreamer / --rtsp / --kvs render a Dockerfile that dockerfile-parse reads: heavy stages
  before COPY src, a kvs builder stage whose products (kvssink and its libraries) the final
  stage copies into GST_PLUGIN_PATH / LD_LIBRARY_PATH and writes to /panorama/.env.
* add-dockerfile-stage changes only the generated block, refuses hand edits inside it unless
  --force, and leaves the file byte-identical on failure.
* The generated manifests pass the official schemas and validate; a stale copy is a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from panorama_cli.build import dockerfile_stages
from panorama_cli.build.render import render_text
from panorama_cli.project import backpack_injection
from tests.support import official
from tests.support.paths import REPO
from tests.support.project_helpers import load, run, snapshot

ACCOUNT = "111122223333"
BACKPACK_SOURCE = REPO / "backpack"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert run(tmp_path, "init-project", "--name", "demo", "--account-id", ACCOUNT).exit_code == 0
    return tmp_path / "demo"


def create(project: Path, name: str, *flags: str) -> Path:
    result = run(project, "create-package", "--name", name, *flags)
    assert result.exit_code == 0, result.stderr
    return project / "packages" / f"{ACCOUNT}-{name}-1.0"


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def shipped_files() -> dict[str, bytes]:
    """backpack/ as the CLI must copy it: everything but __pycache__ and compiled files."""
    return {
        rel: data
        for rel, data in files_under(BACKPACK_SOURCE).items()
        if "__pycache__" not in rel.split("/") and not rel.endswith((".pyc", ".pyo"))
    }


def tree_sha256(files: dict[str, bytes]) -> str:
    """The stamp's contentSha256, computed independently of the implementation."""
    lines = "".join(f"{rel}\0{hashlib.sha256(files[rel]).hexdigest()}\n" for rel in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def validate_problems(project: Path) -> list[dict]:
    result = run(project, "validate", "--json")
    return json.loads(result.stdout)["problems"]


# --------------------------------------------------------------------------- injection


def test_default_package_holds_a_stamped_copy_of_backpack(project):
    import backpack  # noqa: F401  - writes backpack/__pycache__, which must not be copied

    folder = create(project, "app")
    copy = files_under(folder / "src" / "backpack")
    stamp = json.loads(copy.pop("INJECTED.json"))
    expected = shipped_files()
    assert copy == expected
    assert "data/panorama/2019-07-24/service-2.json" in copy
    assert not any("__pycache__" in rel or rel.endswith(".pyc") for rel in copy)
    assert stamp["contentSha256"] == tree_sha256(expected)
    assert stamp["backpackVersion"] == re.search(
        r'__version__ = "([^"]+)"', expected["__init__.py"].decode()
    ).group(1)
    assert stamp["injectedBy"].startswith("panorama-cli ")
    assert sorted(p.name for p in folder.iterdir()) == [
        "Dockerfile",
        "descriptor.json",
        "package.json",
        "src",
    ]


def test_starter_app_local_check_imports_the_copy(project, tmp_path):
    folder = create(project, "app", "--rtsp")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    out = subprocess.run(
        [sys.executable, "-I", str(folder / "src" / "app.py")],
        cwd=elsewhere,
        env={**os.environ, "PANORAMA_LOCAL_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    version = json.loads((folder / "src/backpack/INJECTED.json").read_text())["backpackVersion"]
    assert f"app ready (local check, python {sys.version.split()[0]}, backpack {version})" in (
        out.stdout
    )


@pytest.mark.parametrize(
    "flags",
    [(), ("--gstreamer",), ("--rtsp",), ("--kvs",), ("--rtsp", "--kvs"), ("--no-backpack",)],
)
def test_starter_apps_are_lint_clean(project, flags):
    """The starter app of every flag combination compiles and passes ruff (check + format)."""
    app = create(project, "people_counter", *flags) / "src" / "app.py"
    text = app.read_text()
    compile(text, str(app), "exec")
    ruff = [str(Path(sys.executable).parent / "ruff")]
    rules = ["--isolated", "--line-length", "100"]
    check = subprocess.run(
        [*ruff, "check", *rules, "--select", "E,F,W,I,B,UP", str(app)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [*ruff, "format", *rules, "--check", "--diff", str(app)], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    uses_backpack = "--no-backpack" not in flags
    assert ("from backpack.timepiece import Tachometer" in text) is uses_backpack
    assert ("PanoramaMediaAnnotationDriver()" in text) is uses_backpack
    assert ("RTSPSkyLine(" in text) is ("--rtsp" in flags)
    assert 'os.environ.get("PANORAMA_LOCAL_CHECK") == "1"' in text


def test_no_backpack_gives_the_plain_package(project):
    folder = create(project, "plain", "--no-backpack")
    assert not (folder / "src" / "backpack").exists()
    assert sorted(p.name for p in (folder / "src").iterdir()) == ["app.py"]
    app = (folder / "src" / "app.py").read_text()
    assert "backpack" not in app
    assert app == render_text("package/container/app_plain.py.j2", name="plain", stages=())
    assert not [p for p in validate_problems(project) if "backpack" in p["message"]]


def test_manifests_pass_official_schemas_and_validate(project):
    """Same validate findings with and without backpack/stages; a finished project is valid."""
    plain = create(project, "plain", "--no-backpack")
    full = create(project, "full", "--rtsp", "--kvs")
    for folder in (plain, full):  # package.json has no interface yet: checked when finished
        assert official.errors(official.DESCRIPTOR, load(folder / "descriptor.json")) == []
    found = validate_problems(project)
    by_package = {
        name: sorted(
            (p["pointer"], p["message"].replace(name, "X"))
            for p in found
            if f"-{name}-1.0" in p["file"]
        )
        for name in ("plain", "full")
    }
    assert by_package["plain"] == by_package["full"]
    assert not [p for p in found if "backpack" in (p["message"] + p["file"])]

    finish(project, full, "full")
    result = run(project, "validate", "--json")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["problems"] == []
    assert official.errors(official.PACKAGE, load(full / "package.json")) == []
    assert official.errors(official.GRAPH, load(project / "graphs/demo/graph.json")) == []


def finish(project: Path, folder: Path, name: str) -> None:
    """Register a stand-in container asset + interface and wire camera -> node -> HDMI."""
    descriptor = (folder / "descriptor.json").read_bytes()
    desc_sha = hashlib.sha256(descriptor).hexdigest()
    (project / "assets" / f"{desc_sha}.json").write_bytes(descriptor)
    fake = b"stand-in container filesystem"
    fake_sha = hashlib.sha256(fake).hexdigest()
    (project / "assets" / f"{fake_sha}.tar.gz").write_bytes(fake)
    package = load(folder / "package.json")
    package["nodePackage"]["assets"] = [
        {
            "name": "code",
            "implementations": [
                {
                    "type": "container",
                    "assetUri": f"{fake_sha}.tar.gz",
                    "descriptorUri": f"{desc_sha}.json",
                }
            ],
        }
    ]
    package["nodePackage"]["interfaces"] = [
        {
            "name": "code_interface",
            "category": "business_logic",
            "asset": "code",
            "inputs": [{"name": "video_in", "type": "media"}],
            "outputs": [{"name": "video_out", "type": "media"}],
        }
    ]
    (folder / "package.json").write_text(json.dumps(package, indent=4) + "\n")
    for other in (project / "packages").iterdir():
        if other != folder:  # only the finished package stays in this project
            import shutil

            shutil.rmtree(other)
    graph_path = project / "graphs/demo/graph.json"
    graph = load(graph_path)
    graph["nodeGraph"]["packages"] = [
        p for p in graph["nodeGraph"]["packages"] if p["name"] == f"{ACCOUNT}::{name}"
    ]
    graph_path.write_text(json.dumps(graph, indent=4) + "\n")
    assert run(project, "add-panorama-package", "--type", "camera", "--name", "cam").exit_code == 0
    assert (
        run(project, "add-panorama-package", "--type", "data_sink", "--name", "hdmi").exit_code == 0
    )
    graph = load(graph_path)
    graph["nodeGraph"]["nodes"].append(
        {"name": "code_node", "interface": f"{ACCOUNT}::{name}.code_interface"}
    )
    graph["nodeGraph"]["edges"] = [
        {"producer": "cam.video_out", "consumer": "code_node.video_in"},
        {"producer": "code_node.video_out", "consumer": "hdmi.video_in"},
    ]
    graph_path.write_text(json.dumps(graph, indent=4) + "\n")


# --------------------------------------------------------------------------- update-backpack


def make_outdated(folder: Path) -> str:
    """Turn the copy into a consistent, older injection (as an earlier CLI would have left it)."""
    copy = folder / "src" / "backpack"
    (copy / "timepiece.py").write_text("# an older timepiece\n")
    (copy / "retired_module.py").write_text("# gone from the current backpack\n")
    files = {
        rel: data for rel, data in files_under(copy).items() if rel != backpack_injection.STAMP
    }
    sha = tree_sha256(files)
    stamp = {"backpackVersion": "0.0.9", "contentSha256": sha, "injectedBy": "panorama-cli 0.0.9"}
    (copy / "INJECTED.json").write_text(json.dumps(stamp, indent=4) + "\n")
    return f"0.0.9+{sha[:12]}"


def test_update_backpack_refreshes_an_outdated_copy_then_is_a_noop(project):
    folder = create(project, "app")
    rel = f"packages/{ACCOUNT}-app-1.0"
    old_label = make_outdated(folder)
    warnings = [p for p in validate_problems(project) if "backpack" in p["message"]]
    assert len(warnings) == 1 and warnings[0]["severity"] == "warning"
    assert "update-backpack" in warnings[0]["hint"]

    result = run(project, "update-backpack", "--package-path", rel, "--json")
    assert result.exit_code == 0, result.stderr
    shipped, _ = backpack_injection.bundled()
    assert result.json() == {
        "package": rel,
        "old": old_label,
        "new": shipped.label,
        "changed": True,
    }
    assert f"{old_label} → {shipped.label}" in result.stderr
    copy = files_under(folder / "src" / "backpack")
    copy.pop("INJECTED.json")
    assert copy == shipped_files()  # retired_module.py is gone
    assert sorted(p.name for p in (folder / "src").iterdir()) == ["app.py", "backpack"]
    assert not [p for p in validate_problems(project) if "backpack" in p["message"]]

    before = snapshot(project)
    again = run(project / "packages", "update-backpack", "--package-path", rel)
    assert again.exit_code == 0 and "is current" in again.stderr
    assert snapshot(project) == before


def test_update_backpack_refuses_an_edited_copy_unless_forced(project):
    folder = create(project, "app")
    rel = f"packages/{ACCOUNT}-app-1.0"
    (folder / "src/backpack/geometry.py").write_text("# my local fix\n")
    before = snapshot(project)
    result = run(project, "update-backpack", "--package-path", rel)
    assert result.exit_code == 1 and "edited after it was injected" in result.stderr
    assert "--force" in result.stderr
    assert snapshot(project) == before
    forced = run(project, "update-backpack", "--package-path", rel, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert (folder / "src/backpack/geometry.py").read_bytes() == (
        BACKPACK_SOURCE / "geometry.py"
    ).read_bytes()


def test_validate_warns_on_a_hand_edited_copy_and_force_on_a_current_one_says_current(project):
    folder = create(project, "app")
    rel = f"packages/{ACCOUNT}-app-1.0"
    assert not [p for p in validate_problems(project) if "backpack" in p["message"]]
    (folder / "src/backpack/__pycache__").mkdir(exist_ok=True)
    (folder / "src/backpack/__pycache__/geometry.cpython-311.pyc").write_bytes(b"compiled")
    assert not [p for p in validate_problems(project) if "backpack" in p["message"]]
    forced = run(project, "update-backpack", "--package-path", rel, "--force")
    assert forced.exit_code == 0 and "is current" in forced.stderr
    (folder / "src/backpack/geometry.py").write_text("# my local fix\n")
    result = run(project, "validate", "--json")
    found = [p for p in json.loads(result.stdout)["problems"] if "backpack" in p["message"]]
    assert [p["severity"] for p in found] == ["warning"]
    assert "edited after it was injected" in found[0]["message"]
    assert "--force" in found[0]["hint"]


def test_update_backpack_adds_backpack_to_a_package_without_it(project):
    folder = create(project, "plain", "--no-backpack")
    result = run(project, "update-backpack", "--package-path", str(folder))
    assert result.exit_code == 0, result.stderr
    assert "none → " in result.stderr
    assert backpack_injection.read_stamp(folder) == backpack_injection.bundled()[0]


def test_update_backpack_interrupted_leaves_the_package_byte_identical(project, monkeypatch):
    folder = create(project, "app")
    make_outdated(folder)
    before = snapshot(project)
    real_rename = os.rename
    calls = []

    def flaky_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old copy moved away, new copy not yet in place
            raise KeyboardInterrupt
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky_rename)
    result = run(project, "update-backpack", "--package-path", str(folder))
    monkeypatch.undo()
    assert result.exit_code == 130, result.describe()
    assert len(calls) >= 2
    assert snapshot(project) == before
    assert sorted(p.name for p in (folder / "src").iterdir()) == ["app.py", "backpack"]


def test_update_backpack_needs_a_package_of_the_project(project, tmp_path):
    result = run(project, "update-backpack", "--package-path", str(tmp_path))
    assert result.exit_code == 1 and "not a package folder" in result.stderr


# --------------------------------------------------------------------------- Dockerfile stages


def stages_of(dockerfile: Path) -> list[dict]:
    """The Dockerfile's stages: {"from": ..., "name": ..., "instructions": [...]} in order."""
    parser = DockerfileParser(str(dockerfile))
    stages: list[dict] = []
    preamble: list[dict] = []
    for item in parser.structure:
        if item["instruction"] == "COMMENT":
            continue
        if item["instruction"] == "FROM":
            words = item["value"].split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"from": words[0], "name": name, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append(item)
        else:
            preamble.append(item)
    assert [(i["instruction"], i["value"]) for i in preamble] == [
        ("ARG", "BASE_IMAGE=public.ecr.aws/panorama/panorama-application")
    ]
    return stages


def env_of(stage: dict) -> dict[str, str]:
    """ENV keys and their raw values (before Docker's ${VAR:+...} expansion)."""
    env = {}
    for item in stage["instructions"]:
        if item["instruction"] == "ENV":
            for word in shlex.split(item["value"]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def apt_packages(stage: dict) -> set[str]:
    found: set[str] = set()
    for item in stage["instructions"]:
        if item["instruction"] == "RUN" and "apt-get install" in item["value"]:
            assert "--no-install-recommends" in item["value"]
            words = item["value"].split("apt-get install", 1)[1].split("&&")[0].split()
            found |= {w for w in words if not w.startswith("-") and w != "\\"}
    return found


GSTREAMER_APT = {
    "python3-gi",
    "gir1.2-gstreamer-1.0",
    "gir1.2-gst-plugins-base-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-libav",
    "python3-numpy",
    "python3-opencv",
}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), ()),
        (("--gstreamer",), ("gstreamer",)),
        (("--rtsp",), ("gstreamer", "rtsp")),
        (("--kvs",), ("gstreamer", "kvs")),
        (("--kvs", "--rtsp", "--gstreamer"), ("gstreamer", "rtsp", "kvs")),
    ],
)
def test_stage_flags_render_a_parseable_multistage_dockerfile(project, flags, expected):
    folder = create(project, "app", *flags)
    dockerfile = folder / "Dockerfile"
    block = dockerfile_stages.find_block(dockerfile.read_text())
    assert block is not None and block.stages == expected and not block.edited
    stages = stages_of(dockerfile)
    assert all(s["from"] == "${BASE_IMAGE}" for s in stages)
    final = stages[-1]
    assert final["name"] is None
    # the code comes last: nothing heavy after COPY src, so a code change reuses those layers
    kinds = [(i["instruction"], i["value"]) for i in final["instructions"]]
    assert kinds[-1] == ("COPY", "src /panorama")
    assert all(kind not in ("RUN", "WORKDIR", "ENV") for kind, _ in kinds[-1:])
    packages = apt_packages(final)
    if "gstreamer" in expected:
        assert GSTREAMER_APT <= packages
    else:
        assert packages == set()
    assert ("gir1.2-gst-rtsp-server-1.0" in packages) is ("rtsp" in expected)
    assert ("python3-dotenv" in packages) is ("kvs" in expected)  # backpack.kvs reads .env
    if "kvs" not in expected:
        assert [s["name"] for s in stages] == [None]
        return
    builder, final = stages
    assert builder["name"] == "kvs-builder"
    build = " ".join(i["value"] for i in builder["instructions"])
    assert "amazon-kinesis-video-streams-producer-sdk-cpp" in build
    assert "-DBUILD_GSTREAMER_PLUGIN=ON" in build and "make" in build
    assert {"cmake", "build-essential", "git"} <= apt_packages(builder)
    assert not {"cmake", "build-essential", "git"} & packages  # no toolchain in the final image
    copies = [
        i["value"].split()
        for i in final["instructions"]
        if i["instruction"] == "COPY" and i["value"].startswith("--from=kvs-builder")
    ]
    assert copies, "the final stage copies nothing from the builder"
    env = env_of(final)
    plugin_dir = env["GST_PLUGIN_PATH"].split("$", 1)[0]
    lib_dir = env["LD_LIBRARY_PATH"].split("$", 1)[0]
    # kvssink lands in GST_PLUGIN_PATH, its libraries in LD_LIBRARY_PATH
    dests = {Path(c[-1].rstrip("/")) for c in copies}
    kvssink = [c for c in copies if c[1].endswith("/libgstkvssink.so")]
    assert len(kvssink) == 1 and str(Path(kvssink[0][-1]).parent) == plugin_dir
    assert Path(lib_dir) in dests
    # existing values are kept behind ours
    assert env["GST_PLUGIN_PATH"].endswith("${GST_PLUGIN_PATH:+:${GST_PLUGIN_PATH}}")
    assert env["LD_LIBRARY_PATH"].endswith("${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}")
    # the same values are written to /panorama/.env for backpack.kvs, after the ENV
    runs = [i["value"] for i in final["instructions"] if i["instruction"] == "RUN"]
    dotenv = [r for r in runs if "/panorama/.env" in r]
    assert len(dotenv) == 1
    assert "GST_PLUGIN_PATH=%s" in dotenv[0] and "LD_LIBRARY_PATH=%s" in dotenv[0]
    assert '"$GST_PLUGIN_PATH" "$LD_LIBRARY_PATH"' in dotenv[0]
    # the build fails if kvssink does not load
    assert "ElementFactory.make('kvssink', None)" in dotenv[0]
    order = [i["instruction"] for i in final["instructions"]]
    assert (
        order.index("ENV")
        < [n for n, i in enumerate(final["instructions"]) if "/panorama/.env" in i["value"]][0]
    )


USER_TOP = "# my team's header\n"
USER_LINES = "RUN echo 'my own layer' > /my-layer\nENV APP_MODE=demo\n"


def with_user_edits(dockerfile: Path) -> tuple[str, str]:
    """Add lines above and below the generated block; return (text before, text after) it."""
    text = USER_TOP + dockerfile.read_text()
    text = text.replace("COPY src /panorama\n", USER_LINES + "COPY src /panorama\n")
    dockerfile.write_text(text)
    return outside_block(text)


def outside_block(text: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    block = dockerfile_stages.find_block(text)
    assert block is not None
    return "".join(lines[: block.start]), "".join(lines[block.end + 1 :])


def test_add_dockerfile_stage_keeps_user_edits(project):
    folder = create(project, "app")
    rel = f"packages/{ACCOUNT}-app-1.0"
    dockerfile = folder / "Dockerfile"
    outside = with_user_edits(dockerfile)
    result = run(project, "add-dockerfile-stage", "--package-path", rel, "--stage", "rtsp")
    assert result.exit_code == 0, result.stderr
    assert "none → gstreamer rtsp" in result.stderr and "build-container" in result.stderr
    text = dockerfile.read_text()
    assert outside_block(text) == outside
    reference = create(project, "ref", "--rtsp")
    ref_lines = (reference / "Dockerfile").read_text().splitlines(keepends=True)
    ref_block = dockerfile_stages.find_block("".join(ref_lines))
    lines = text.splitlines(keepends=True)
    block = dockerfile_stages.find_block(text)
    assert lines[block.start : block.end + 1] == ref_lines[ref_block.start : ref_block.end + 1]
    assert USER_LINES in text and text.startswith(USER_TOP)

    result = run(project, "add-dockerfile-stage", "--package-path", rel, "--stage", "kvs")
    assert result.exit_code == 0 and "gstreamer rtsp → gstreamer rtsp kvs" in result.stderr
    assert outside_block(dockerfile.read_text()) == outside
    assert [s["name"] for s in stages_of(dockerfile)] == ["kvs-builder", None]

    before = snapshot(project)
    again = run(project, "add-dockerfile-stage", "--package-path", rel, "--stage", "gstreamer")
    assert again.exit_code == 0 and "has the stages already" in again.stderr
    assert snapshot(project) == before


def test_add_dockerfile_stage_refuses_edits_inside_the_block_unless_forced(project):
    folder = create(project, "app", "--gstreamer")
    rel = f"packages/{ACCOUNT}-app-1.0"
    dockerfile = folder / "Dockerfile"
    outside = with_user_edits(dockerfile)
    text = dockerfile.read_text().replace(
        "        python3-opencv \\\n", "        python3-opencv \\\n        vim \\\n"
    )
    dockerfile.write_text(text)
    before = snapshot(project)
    result = run(project, "add-dockerfile-stage", "--package-path", rel, "--stage", "rtsp")
    assert result.exit_code == 1 and "edited by hand" in result.stderr, result.stderr
    assert "--force" in result.stderr
    assert snapshot(project) == before
    forced = run(
        project, "add-dockerfile-stage", "--package-path", rel, "--stage", "rtsp", "--force"
    )
    assert forced.exit_code == 0 and "gstreamer → gstreamer rtsp" in forced.stderr
    new = dockerfile.read_text()
    assert "vim" not in new and outside_block(new) == outside
    assert not dockerfile_stages.find_block(new).edited
    dockerfile.write_text(new.replace("gstreamer1.0-libav \\\n", ""))  # edit, same stages
    again = run(project, "add-dockerfile-stage", "--package-path", rel, "--stage", "rtsp")
    assert again.exit_code == 0 and "has the stages already" in again.stderr  # left alone
    regen = run(
        project, "add-dockerfile-stage", "--package-path", rel, "--stage", "rtsp", "--force"
    )
    assert regen.exit_code == 0 and "gstreamer rtsp (regenerated)" in regen.stderr
    assert dockerfile.read_text() == new


def test_add_dockerfile_stage_to_a_dockerfile_without_markers(project):
    folder = create(project, "app")
    dockerfile = folder / "Dockerfile"
    legacy = (
        "# written before stages existed\n"
        "ARG BASE_IMAGE=public.ecr.aws/panorama/panorama-application\n"
        "FROM ${BASE_IMAGE}\n"
        "RUN echo mine\n"
        "COPY src /panorama\n"
    )
    dockerfile.write_text(legacy)
    result = run(project, "add-dockerfile-stage", "--package-path", str(folder), "--stage", "rtsp")
    assert result.exit_code == 0, result.stderr
    text = dockerfile.read_text()
    head, tail = outside_block(text)
    assert head == legacy.split("FROM")[0]
    assert tail == "RUN echo mine\nCOPY src /panorama\n"
    stages = stages_of(dockerfile)
    assert len(stages) == 1 and GSTREAMER_APT <= apt_packages(stages[0])


@pytest.mark.parametrize(
    "text",
    [
        "FROM a AS b\nFROM ${BASE_IMAGE}\nCOPY src /panorama\n",  # two FROMs, no markers
        "FROM python:3\nCOPY src /panorama\n",  # not the BASE_IMAGE FROM
        f"{dockerfile_stages.BEGIN} gstreamer\nFROM ${{BASE_IMAGE}}\n",  # BEGIN without END
        f"{dockerfile_stages.BEGIN} opencl\nFROM ${{BASE_IMAGE}}\n{dockerfile_stages.END}\n",
    ],
)
def test_add_dockerfile_stage_refusals_change_nothing(project, text):
    folder = create(project, "app")
    (folder / "Dockerfile").write_text(text)
    before = snapshot(project)
    result = run(project, "add-dockerfile-stage", "--package-path", str(folder), "--stage", "kvs")
    assert result.exit_code == 1, result.describe()
    assert "Traceback" not in result.stderr
    assert snapshot(project) == before


def test_add_dockerfile_stage_interrupted_leaves_the_file_byte_identical(project, monkeypatch):
    folder = create(project, "app", "--gstreamer")
    with_user_edits(folder / "Dockerfile")
    before = snapshot(project)

    def interrupted(path, data):
        raise KeyboardInterrupt

    monkeypatch.setattr("panorama_cli.project.manifests.write_atomic", interrupted)
    result = run(project, "add-dockerfile-stage", "--package-path", str(folder), "--stage", "kvs")
    monkeypatch.undo()
    assert result.exit_code == 130, result.describe()
    assert snapshot(project) == before


def test_add_dockerfile_stage_keeps_crlf_line_ends(project):
    folder = create(project, "app")
    dockerfile = folder / "Dockerfile"
    dockerfile.write_bytes(dockerfile.read_bytes().replace(b"\n", b"\r\n"))
    result = run(project, "add-dockerfile-stage", "--package-path", str(folder), "--stage", "rtsp")
    assert result.exit_code == 0, result.stderr
    data = dockerfile.read_bytes()
    assert b"\r\n" in data and data.count(b"\n") == data.count(b"\r\n")
    assert dockerfile_stages.find_block(data.decode()).stages == ("gstreamer", "rtsp")


def test_stage_flags_need_a_container_and_failures_create_nothing(project, monkeypatch):
    before = snapshot(project)
    result = run(project, "create-package", "--name", "m", "--type", "Model", "--gstreamer")
    assert result.exit_code == 2 and "--type Container" in result.stderr
    result = run(project, "create-package", "--name", "c", "-camera", "--no-backpack")
    assert result.exit_code == 2
    assert snapshot(project) == before

    real_rename = os.rename

    def interrupted(src, dst):
        if Path(dst).name.endswith("-app-1.0"):
            raise KeyboardInterrupt
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", interrupted)
    result = run(project, "create-package", "--name", "app", "--rtsp", "--kvs")
    monkeypatch.undo()
    assert result.exit_code == 130, result.describe()
    assert snapshot(project) == before
    assert sorted(p.name for p in (project / "packages").iterdir()) == []
