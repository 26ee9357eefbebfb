"""The Greengrass component's secret fetcher (panorama_cli.fleet.greengrass_fetch): a stand-in
IPC client object in place of the nucleus, real files; the real SDK where no nucleus listens."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from panorama_cli.fleet import greengrass_fetch
from panorama_cli.fleet.greengrass_fetch import FetchError, Output, fetch, main, write_outputs
from panorama_cli.fleet.greengrass_scripts import ENV_IPC_SOCKET
from tests.support.greengrass_ipc import FAKE_AWSIOT, write_nucleus
from tests.support.paths import REPO

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:panorama-cli/app-AbCdEf"
DOCUMENT = {
    "cameras": {"lobby": "rtsp://admin:s3cret@10.0.0.5/s", "a/b~c": "rtsp://u:p@h/x"},
    "control": {"key": "ab" * 32, "tokens": {"people_counter": "tok-1"}, "serve": "srv"},
}
OUTPUTS = [
    "secrets/camera-lobby=/cameras/lobby",
    "secrets/camera-odd=/cameras/a~1b~0c",
    "secrets/control.key=/control/key",
    "secrets/serve-token=/control/serve",
    "tokens/people-counter.token=/control/tokens/people_counter",
]


class UnauthorizedError(Exception):
    """Named as the SDK's (the fetcher tells the SDK's errors by name)."""


class ResourceNotFoundError(Exception):
    pass


class Client:
    """Stands in for GreengrassCoreIPCClientV2: answers with ``answer`` (a text, an
    exception, or None: never)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[str] = []
        self.closed = False

    def get_secret_value_async(self, *, secret_id: str) -> Any:
        self.asked.append(secret_id)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if isinstance(self.answer, BaseException):
            future.set_exception(self.answer)
        elif self.answer is not None:
            value = type("SecretValue", (), {"secret_string": self.answer})()
            future.set_result(type("Response", (), {"secret_value": value})())
        return future

    def close(self) -> None:
        self.closed = True


def _out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    for folder in ("secrets", "tokens"):
        (out / folder).mkdir(parents=True, mode=0o700)
    return out


def test_writes_each_value_into_its_file(tmp_path, capsys):
    out = _out(tmp_path)
    client = Client(json.dumps(DOCUMENT))
    assert main(["--secret-id", ARN, "--out", str(out), *OUTPUTS], connect=lambda: client) == 0
    assert client.asked == [ARN] and client.closed
    expected = {
        "secrets/camera-lobby": "rtsp://admin:s3cret@10.0.0.5/s",
        "secrets/camera-odd": "rtsp://u:p@h/x",
        "secrets/control.key": "ab" * 32,
        "secrets/serve-token": "srv",
        "tokens/people-counter.token": "tok-1",
    }
    for path, value in expected.items():
        assert (out / path).read_text() == value
        assert (out / path).stat().st_mode & 0o7777 == 0o644
    # nothing else: no temporary file left behind
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(
        expected
    )
    err = capsys.readouterr().err
    assert err.strip() == "panorama-cli greengrass secrets: 5 file(s) written"
    assert "s3cret" not in err and "srv" not in err


def test_a_link_in_place_of_a_file_is_replaced_not_followed(tmp_path):
    out = _out(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (out / "secrets" / "serve-token").symlink_to(victim)
    write_outputs(DOCUMENT, str(out), [Output.parse("secrets/serve-token=/control/serve")])
    assert victim.read_text() == "keep"
    assert not (out / "secrets" / "serve-token").is_symlink()
    assert (out / "secrets" / "serve-token").read_text() == "srv"


def test_a_folder_that_is_a_link_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "secrets").symlink_to(elsewhere)
    with pytest.raises(FetchError, match="cannot open .*/secrets"):
        write_outputs(DOCUMENT, str(out), [Output.parse("secrets/x=/control/serve")])
    assert list(elsewhere.iterdir()) == []


def test_every_value_is_checked_before_a_file_is_written(tmp_path):
    out = _out(tmp_path)
    outputs = [Output.parse(OUTPUTS[0]), Output.parse("secrets/x=/cameras/gone")]
    with pytest.raises(FetchError, match="no value at /cameras/gone: deploy the bundle again"):
        write_outputs(DOCUMENT, str(out), outputs)
    assert list((out / "secrets").iterdir()) == []
    for bad in ({"control": {"key": 7}}, {"control": {"key": ""}}, {"control": {"key": "a\0b"}}):
        with pytest.raises(FetchError, match="not a non-empty string"):
            write_outputs(bad, str(out), [Output.parse("secrets/k=/control/key")])


@pytest.mark.parametrize(
    "text",
    ["../x=/a", "secrets/../x=/a", "a/b/c=/a", ".hidden=/a", "secrets/-x=/a", "x", "/abs=/a",
     "x=a", "secrets/=/a"],
)  # fmt: skip
def test_paths_other_than_plain_names_are_refused(text):
    with pytest.raises(FetchError):
        Output.parse(text)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (UnauthorizedError("no"), "may not read secret .* deploy the bundle again"),
        (ResourceNotFoundError("no"), "is not on this core device: .*cloudSecrets"),
        (RuntimeError("boom\nsecond line"), "GetSecretValue of .* failed: RuntimeError: boom"),
        ("not json", "is not a JSON object"),
        ('["a list"]', "is not a JSON object"),
        (json.dumps({"x": "y" * 70000}), "larger than 65536 bytes"),
    ],
)
def test_refusals_and_bad_values_are_one_line(answer, message, tmp_path, capsys):
    with pytest.raises(FetchError, match=message):
        fetch(ARN, connect=lambda: Client(answer))
    out = _out(tmp_path)
    assert main(["--secret-id", ARN, "--out", str(out), *OUTPUTS],
                connect=lambda: Client(answer)) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_no_answer_is_a_bounded_wait():
    client = Client(None)
    with pytest.raises(FetchError, match="no answer from the Greengrass nucleus in 0.2 s"):
        fetch(ARN, connect=lambda: client, timeout=0.2)
    assert client.closed


def _run_module(env: dict[str, str], out: Path, pythonpath: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "panorama_cli.fleet.greengrass_fetch", "--secret-id", ARN,
         "--out", str(out), *OUTPUTS],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_real_sdk_without_a_nucleus_is_one_line(tmp_path):
    """The AWS IoT Device SDK (installed with the test dependencies), no nucleus listening."""
    pytest.importorskip("awsiot.greengrasscoreipc.clientv2")
    out = _out(tmp_path)
    done = _run_module({}, out, str(REPO))
    assert done.returncode == 1
    assert done.stderr.strip().endswith("no Greengrass IPC socket or SVCUID in the environment: "
                                        "the component's Run step passes them (run by the "
                                        "Greengrass nucleus only)")  # fmt: skip
    missing = tmp_path / "no-such.socket"
    done = _run_module({ENV_IPC_SOCKET: str(missing), "SVCUID": "x"}, out, str(REPO))
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"cannot connect to the Greengrass nucleus at {missing}" in line
    assert list((out / "secrets").iterdir()) == []


def test_the_module_with_the_sdk_stand_in(tmp_path):
    """``python -m`` with the SDK stand-in first on the path: the module's own SDK calls
    (connect, GreengrassCoreIPCClientV2.get_secret_value_async) as a nucleus answers them."""
    out = _out(tmp_path)
    env = write_nucleus(tmp_path / "ipc.socket", {ARN: json.dumps(DOCUMENT)})
    done = _run_module(env, out, f"{FAKE_AWSIOT}:{REPO}")
    assert done.returncode == 0, done.stderr
    assert (out / "tokens" / "people-counter.token").read_text() == "tok-1"
    # another component's secret: the nucleus says no
    env = write_nucleus(tmp_path / "ipc.socket", {ARN: json.dumps(DOCUMENT)}, allowed=[])
    done = _run_module(env, out, f"{FAKE_AWSIOT}:{REPO}")
    assert done.returncode == 1 and "may not read secret" in done.stderr
    # a wrong SVCUID: the connection is refused
    env["SVCUID"] = "not-the-component"
    done = _run_module(env, out, f"{FAKE_AWSIOT}:{REPO}")
    assert done.returncode == 1 and "cannot connect to the Greengrass nucleus" in done.stderr


def test_runs_with_only_the_standard_library_and_the_sdk(tmp_path):
    """In the serve image it must not need panorama-cli's dependencies: only its own file and
    the package __init__ files are on the path."""
    lib = tmp_path / "lib" / "panorama_cli" / "fleet"
    lib.mkdir(parents=True)
    for name in ("__init__.py", "fleet/__init__.py", "fleet/greengrass_fetch.py"):
        source = Path(greengrass_fetch.__file__).parents[1] / name
        (tmp_path / "lib" / "panorama_cli" / name).write_text(source.read_text())
    out = _out(tmp_path)
    env = write_nucleus(tmp_path / "ipc.socket", {ARN: json.dumps(DOCUMENT)})
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c",
         "import sys; sys.path[:0] = sys.argv[1:3]; del sys.argv[1:3]; import runpy; "
         "runpy.run_module('panorama_cli.fleet.greengrass_fetch', run_name='__main__')",
         str(FAKE_AWSIOT), str(tmp_path / "lib"), "--secret-id", ARN, "--out", str(out),
         *OUTPUTS],
        env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert os.listdir(out / "secrets")
