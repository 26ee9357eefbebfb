"""panorama_cli.build.docker_engine against a real Docker engine (DOCKER_HOST), no mocks."""

from __future__ import annotations

import gzip
import tarfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from panorama_cli.build import docker_engine, platforms
from panorama_cli.errors import UserError
from panorama_cli.project import assets

AARCH64_MAGIC = "7f454c460201010000000000000000000200b700"
AARCH64_MASK = "ffffffffffffff00fffffffffffffffffeffffff"


# --------------------------------------------------------------------------- helpers


class ChunkReader:
    """A read()-able file over an iterator of bytes chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


def our_containers(client) -> set[str]:
    return {
        c.id
        for c in client.containers.list(all=True, filters={"label": docker_engine.CONTAINER_LABEL})
    }


@pytest.fixture
def image_tag(docker_client) -> Iterator[str]:
    """A unique tag for a test image, removed afterwards."""
    tag = f"panorama-cli-test/engine-{uuid.uuid4().hex[:10]}:latest"
    yield tag
    try:
        docker_client.images.remove(tag, force=True)
    except Exception:
        pass


@pytest.fixture
def small_image(docker_client, base_image_amd64, tmp_path: Path, image_tag: str) -> str:
    """FROM the local base image, with a known file added via a build arg."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base_image_amd64}\n"
        "ARG GREETING=unset\n"
        "COPY app.py /panorama/app.py\n"
        'RUN mkdir -p /opt/marker && echo "$GREETING" > /opt/marker/greeting.txt\n'
    )
    (ctx / "app.py").write_text("import sys\nprint('app started', sys.argv[1:])\n")
    docker_engine.build_image(
        ctx,
        tag=image_tag,
        platform="linux/amd64",
        build_args={"GREETING": "hello panorama"},
        client=docker_client,
    )
    return image_tag


# --------------------------------------------------------------------------- connect


def test_connect_unreachable_engine_names_docker_host(monkeypatch, tmp_path: Path) -> None:
    sock = tmp_path / "no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    with pytest.raises(UserError) as err:
        docker_engine.connect(timeout_s=5)
    assert "DOCKER_HOST" in err.value.message and str(sock) in err.value.message
    assert "DOCKER_HOST" in err.value.hint


@pytest.mark.docker
def test_connect_works(docker_client) -> None:
    client = docker_engine.connect()
    assert client.ping()


# --------------------------------------------------------------------------- check_platform


def write_handler(d: Path, name: str, *, enabled: bool = True, flags: str = "PF") -> Path:
    (d / "register").write_text("")
    (d / "status").write_text("enabled\n")
    p = d / name
    p.write_text(
        ("enabled" if enabled else "disabled")
        + "\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
        + f"flags: {flags}\noffset 0\nmagic {AARCH64_MAGIC}\nmask {AARCH64_MASK}\n"
    )
    return p


def test_check_platform_without_binfmt_gives_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        docker_engine.check_platform("linux/arm64", binfmt_dir=tmp_path, host_machine="x86_64")
    hint = err.value.hint
    assert "sudo apt-get install qemu-user-static binfmt-support" in hint
    assert f"sudo mount -t binfmt_misc binfmt_misc {tmp_path}" in hint
    assert "docker run --privileged --rm tonistiigi/binfmt --install arm64" in hint


def test_check_platform_mounted_but_no_handler(tmp_path: Path) -> None:
    (tmp_path / "register").write_text("")
    (tmp_path / "status").write_text("enabled\n")
    with pytest.raises(UserError) as err:
        docker_engine.check_platform("linux/arm64", binfmt_dir=tmp_path, host_machine="x86_64")
    assert "no emulator" in err.value.message
    assert "sudo apt-get install qemu-user-static binfmt-support" in err.value.hint
    assert "tonistiigi/binfmt --install arm64" in err.value.hint
    assert "mount -t" not in err.value.hint


def test_check_platform_passes_with_enabled_qemu_aarch64(tmp_path: Path) -> None:
    write_handler(tmp_path, "qemu-aarch64")
    docker_engine.check_platform("linux/arm64", binfmt_dir=tmp_path, host_machine="x86_64")
    docker_engine.check_platform("linux/arm64/v8", binfmt_dir=tmp_path, host_machine="amd64")


def test_check_platform_finds_handler_under_another_name_by_magic(tmp_path: Path) -> None:
    write_handler(tmp_path, "my-arm-emulator")
    docker_engine.check_platform("linux/arm64", binfmt_dir=tmp_path, host_machine="x86_64")


def test_check_platform_disabled_handler(tmp_path: Path) -> None:
    write_handler(tmp_path, "qemu-aarch64", enabled=False)
    with pytest.raises(UserError) as err:
        docker_engine.check_platform("linux/arm64", binfmt_dir=tmp_path, host_machine="x86_64")
    assert "disabled" in err.value.message
    assert "update-binfmts --enable qemu-aarch64" in err.value.hint


def test_check_platform_handler_without_fix_binary_flag(tmp_path: Path) -> None:
    write_handler(tmp_path, "qemu-aarch64", flags="")
    with pytest.raises(UserError, match="F flag"):
        docker_engine.check_platform("linux/arm64", binfmt_dir=tmp_path, host_machine="x86_64")


def test_check_platform_binfmt_globally_disabled(tmp_path: Path) -> None:
    write_handler(tmp_path, "qemu-aarch64")
    (tmp_path / "status").write_text("disabled\n")
    with pytest.raises(UserError) as err:
        docker_engine.check_platform("linux/arm64", binfmt_dir=tmp_path, host_machine="x86_64")
    assert f"echo 1 | sudo tee {tmp_path / 'status'}" in err.value.hint


def test_check_platform_native_needs_nothing(tmp_path: Path) -> None:
    docker_engine.check_platform("linux/arm64", binfmt_dir=tmp_path, host_machine="aarch64")
    docker_engine.check_platform("linux/amd64", binfmt_dir=tmp_path, host_machine="x86_64")


@pytest.mark.parametrize("bad", ["linux/s390x", "windows/amd64", "arm64", ""])
def test_check_platform_unsupported(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UserError, match="unsupported platform"):
        docker_engine.check_platform(bad, binfmt_dir=tmp_path, host_machine="x86_64")


def test_check_platform_on_this_host_for_arm64(arm64_emulation) -> None:
    """The real /proc/sys/fs/binfmt_misc of the test machine has a usable handler."""
    docker_engine.check_platform("linux/arm64")


# --------------------------------------------------------------------------- build_image


@pytest.mark.docker
def test_build_image_with_build_arg(docker_client, small_image: str) -> None:
    code, logs = docker_engine.run_once(
        small_image, ["cat", "/opt/marker/greeting.txt"], client=docker_client
    )
    assert (code, logs) == (0, "hello panorama\n")
    image = docker_client.images.get(small_image)
    assert image.attrs["Architecture"] == "amd64"


@pytest.mark.docker
def test_build_image_streams_log_lines_and_returns_id(
    docker_client, base_image_amd64, tmp_path: Path, image_tag: str
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image_amd64}\nRUN echo building-now\n")
    lines: list[str] = []
    image_id = docker_engine.build_image(
        tmp_path, tag=image_tag, platform="linux/amd64", on_log=lines.append, client=docker_client
    )
    assert image_id.startswith("sha256:")
    assert docker_client.images.get(image_tag).id == image_id
    assert any(line.startswith("Step 2/2 : RUN echo building-now") for line in lines)
    assert "building-now" in lines
    assert all("\n" not in line for line in lines)


@pytest.mark.docker
def test_build_image_failing_run_step(
    docker_client, base_image_amd64, tmp_path: Path, image_tag: str
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image_amd64}\nRUN echo about-to-fail && exit 3\nRUN echo never\n"
    )
    before = our_containers(docker_client)
    with pytest.raises(docker_engine.BuildFailed) as err:
        docker_engine.build_image(
            tmp_path, tag=image_tag, platform="linux/amd64", client=docker_client
        )
    e = err.value
    assert isinstance(e, UserError)
    assert "Step 2/3 : RUN echo about-to-fail && exit 3" in e.message
    assert "non-zero code: 3" in e.message
    assert "about-to-fail" in e.hint and str(tmp_path / "Dockerfile") in e.hint
    assert "about-to-fail" in e.log_tail
    assert "\n" not in e.message
    # forcerm: no intermediate container left over
    left = docker_client.containers.list(all=True, filters={"ancestor": base_image_amd64})
    assert not [c for c in left if c.id not in before and c.status != "running"]


@pytest.mark.docker
def test_build_image_missing_base_image_is_not_pulled(
    docker_client, tmp_path: Path, image_tag: str
) -> None:
    missing = f"panorama-cli-test/does-not-exist-{uuid.uuid4().hex[:8]}:1"
    (tmp_path / "Dockerfile").write_text(f"FROM {missing}\n")
    with pytest.raises(UserError) as err:
        docker_engine.build_image(
            tmp_path, tag=image_tag, platform="linux/amd64", client=docker_client
        )
    assert "FROM" in err.value.message
    assert missing in err.value.hint and "local engine" in err.value.hint


def test_build_image_missing_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no Dockerfile"):
        docker_engine.build_image(tmp_path, tag="x:1", platform="linux/amd64")


@pytest.mark.docker
@pytest.mark.arm64
def test_build_and_run_arm64(
    docker_client, base_image_arm64, arm64_emulation, tmp_path: Path, image_tag: str
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image_arm64}\nARG WHO\nRUN uname -m > /arch && echo $WHO >> /arch\n"
    )
    docker_engine.build_image(
        tmp_path,
        tag=image_tag,
        platform="linux/arm64",
        build_args={"WHO": "panorama"},
        client=docker_client,
    )
    assert docker_client.images.get(image_tag).attrs["Architecture"] == "arm64"
    code, logs = docker_engine.run_once(
        image_tag, ["cat", "/arch"], platform="linux/arm64", client=docker_client, timeout_s=120
    )
    assert (code, logs) == (0, "aarch64\npanorama\n")


# --------------------------------------------------------------------------- export_filesystem


@pytest.mark.docker
def test_export_filesystem_is_a_tar_with_the_added_file(docker_client, small_image: str) -> None:
    before = our_containers(docker_client)
    found = {}
    with docker_engine.export_filesystem(small_image, client=docker_client) as chunks:
        during = our_containers(docker_client) - before
        assert len(during) == 1  # the export container exists while we stream
        with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if name in ("opt/marker/greeting.txt", "panorama/app.py"):
                    found[name] = tar.extractfile(member).read()
                if name == "usr/bin/python3":
                    found[name] = b"present"
    assert found["opt/marker/greeting.txt"] == b"hello panorama\n"
    assert found["panorama/app.py"].startswith(b"import sys")
    assert "usr/bin/python3" in found
    assert our_containers(docker_client) == before


@pytest.mark.docker
def test_export_filesystem_removes_container_after_error_mid_stream(
    docker_client, small_image: str
) -> None:
    before = our_containers(docker_client)
    with pytest.raises(RuntimeError, match="consumer failed"):
        with docker_engine.export_filesystem(small_image, client=docker_client) as chunks:
            next(iter(chunks))
            raise RuntimeError("consumer failed")
    assert our_containers(docker_client) == before


@pytest.mark.docker
def test_export_to_store_keyboard_interrupt_cleans_everything(
    docker_client, small_image: str, tmp_path: Path
) -> None:
    assets_dir = tmp_path / "assets"
    assets_dir.mkdir()
    before = our_containers(docker_client)

    def interrupt_after(chunks, n):
        for i, chunk in enumerate(chunks):
            if i == n:
                raise KeyboardInterrupt
            yield chunk

    with pytest.raises(KeyboardInterrupt):
        with docker_engine.export_filesystem(small_image, client=docker_client) as chunks:
            assets.store_stream(interrupt_after(chunks, 20), assets_dir)
    assert list(assets_dir.iterdir()) == []
    assert our_containers(docker_client) == before


@pytest.mark.docker
def test_export_into_asset_store(docker_client, small_image: str, tmp_path: Path) -> None:
    assets_dir = tmp_path / "assets"
    assets_dir.mkdir()
    total = []
    with docker_engine.export_filesystem(small_image, client=docker_client) as chunks:
        asset = assets.store_stream(chunks, assets_dir, progress=total.append)
    assert assets.verify(asset.path)
    assert asset.size < sum(total)
    with gzip.open(asset.path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
        names = {m.name.lstrip("./") for m in tar}
    assert "opt/marker/greeting.txt" in names


@pytest.mark.docker
def test_export_missing_image(docker_client) -> None:
    with pytest.raises(UserError) as err:
        with docker_engine.export_filesystem(
            f"panorama-cli-test/missing-{uuid.uuid4().hex[:8]}:1", client=docker_client
        ):
            pass
    assert "not found" in err.value.message
    assert "build" in err.value.hint and "pull" in err.value.hint


@pytest.mark.docker
def test_export_image_without_cmd(docker_client, base_image_amd64, tmp_path, image_tag) -> None:
    """Images without CMD (e.g. FROM scratch + files) still export."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY f /f\nCMD []\n")
    (tmp_path / "f").write_text("only file\n")
    docker_engine.build_image(tmp_path, tag=image_tag, platform="linux/amd64", client=docker_client)
    with docker_engine.export_filesystem(image_tag, client=docker_client) as chunks:
        with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as tar:
            names = [m.name for m in tar]
    assert "f" in names


# --------------------------------------------------------------------------- run_once


@pytest.mark.docker
def test_run_once_exit_code_and_logs(docker_client, small_image: str) -> None:
    before = our_containers(docker_client)
    code, logs = docker_engine.run_once(
        small_image,
        ["python3", "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"],
        client=docker_client,
    )
    assert code == 4
    assert "out" in logs and "err" in logs
    code, logs = docker_engine.run_once(
        small_image, ["python3", "/panorama/app.py", "--check"], client=docker_client
    )
    assert (code, logs) == (0, "app started ['--check']\n")
    assert our_containers(docker_client) == before


@pytest.mark.docker
def test_run_once_missing_program(docker_client, small_image: str) -> None:
    before = our_containers(docker_client)
    with pytest.raises(UserError, match="cannot start 'no-such-program'"):
        docker_engine.run_once(small_image, ["no-such-program"], client=docker_client)
    assert our_containers(docker_client) == before


@pytest.mark.docker
def test_run_once_timeout_kills_and_removes(docker_client, small_image: str) -> None:
    before = our_containers(docker_client)
    with pytest.raises(UserError, match="did not exit within 2 s"):
        docker_engine.run_once(small_image, ["sleep", "60"], timeout_s=2, client=docker_client)
    assert our_containers(docker_client) == before


@pytest.mark.docker
def test_run_once_environment_and_no_network(docker_client, small_image: str) -> None:
    code, logs = docker_engine.run_once(
        small_image,
        [
            "python3",
            "-c",
            "import os, socket; print(os.environ['PANORAMA_LOCAL_CHECK']);"
            "print(sorted(n for _, n in socket.if_nameindex()))",
        ],
        environment={"PANORAMA_LOCAL_CHECK": "1"},
        network_disabled=True,
        client=docker_client,
    )
    assert (code, logs) == (0, "1\n['lo']\n")


@pytest.mark.docker
def test_build_image_preflight_stops_before_building(
    docker_client, base_image_amd64, monkeypatch, tmp_path: Path, image_tag: str
) -> None:
    """On a host without arm64 emulation, an arm64 build fails up front with the fix."""
    empty = tmp_path / "binfmt"
    empty.mkdir()
    monkeypatch.setattr(platforms, "BINFMT_DIR", empty)
    monkeypatch.setattr(platforms._host_platform, "machine", lambda: "x86_64")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base_image_amd64}\nRUN echo should-not-run\n")
    lines: list[str] = []
    with pytest.raises(UserError) as err:
        docker_engine.build_image(
            ctx, tag=image_tag, platform="linux/arm64", on_log=lines.append, client=docker_client
        )
    assert "qemu-user-static" in err.value.hint
    assert lines == []  # nothing was sent to the builder
    with pytest.raises(Exception, match="No such image|not found"):
        docker_client.images.get(image_tag)
