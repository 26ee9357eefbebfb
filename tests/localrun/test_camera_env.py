"""Camera sources from ``PANORAMA_CAMERA_<NODE>``: the name mapping, the precedence of
``--camera``, and ``run`` fed by the variable alone in a real process (no source on its
command line)."""

from __future__ import annotations

import pytest

from panorama_cli.errors import UsageError
from panorama_cli.localrun.camera_env import (
    camera_environ,
    command_line_warning,
    env_name,
    env_sources,
)
from tests.localrun.helpers import make_project, video
from tests.localrun.test_run_apps import PASS_THROUGH
from tests.support.cli_runner import run_cli_subprocess


def test_the_variable_name_is_the_node_upper_cased_with_other_characters_as_underscores():
    assert env_name("front_camera") == "PANORAMA_CAMERA_FRONT_CAMERA"
    assert env_name("lobby-cam.2") == "PANORAMA_CAMERA_LOBBY_CAM_2"
    assert env_name("Caméra") == "PANORAMA_CAMERA_CAM_RA"


def test_command_line_wins_then_the_variable_and_empty_counts_as_unset(tmp_path):
    environ = {"PANORAMA_CAMERA_FRONT": "rtsp://u:env@h/a", "PANORAMA_CAMERA_BACK": "b.avi",
               "PANORAMA_CAMERA_SIDE": "", "OTHER": "x"}  # fmt: skip
    assert camera_environ(environ) == {
        "PANORAMA_CAMERA_FRONT": "rtsp://u:env@h/a",
        "PANORAMA_CAMERA_BACK": "b.avi",
    }
    found = env_sources(["front", "back", "side"], camera_environ(environ), given=["back"])
    assert found == {"front": "rtsp://u:env@h/a"}  # back: --camera wins; side: empty
    secret = tmp_path / "front.url"
    secret.write_text("rtsp://u:file@h/a\n")
    assert env_sources(["front"], {"PANORAMA_CAMERA_FRONT": f"@{secret}"}) == {
        "front": "rtsp://u:file@h/a"
    }


def test_two_nodes_sharing_a_variable_is_a_usage_error_naming_both():
    with pytest.raises(UsageError) as caught:
        env_sources(["lobby-cam", "lobby_cam"], {"PANORAMA_CAMERA_LOBBY_CAM": "x.avi"})
    assert "lobby-cam, lobby_cam" in str(caught.value)
    # one of them given with --camera: the variable is still ambiguous
    with pytest.raises(UsageError):
        env_sources(["a-b", "a_b"], {"PANORAMA_CAMERA_A_B": "x.avi"}, given=["a-b"])
    # both given: the variable is not used
    assert env_sources(["a-b", "a_b"], {"PANORAMA_CAMERA_A_B": "x"}, given=["a-b", "a_b"]) == {}


def test_a_password_on_the_command_line_gets_one_warning_without_the_password():
    line = command_line_warning(["front=rtsp://admin:hunter2@10.0.0.5/s", "back=b.avi"])
    assert line is not None and "hunter2" not in line
    assert "--camera front=@FILE" in line and "PANORAMA_CAMERA_FRONT" in line
    assert command_line_warning(["front=@/run/secrets/front", "back=rtsp://10.0.0.5/s"]) is None
    assert command_line_warning(["c=gst:rtspsrc location=rtsp://u:pw@h/s ! fakesink"])


def test_run_takes_the_camera_from_the_variable_and_the_command_line_wins(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    out = tmp_path / "out"
    env = {"PANORAMA_CAMERA_FRONT_CAMERA": video()}
    result = run_cli_subprocess(
        ["run", "--frames", "3", "--fast", "--json", "--output-dir", str(out)], cwd=root, env=env
    )
    assert result.exit_code == 0, result.describe()
    assert result.json()["exit_reason"] == "frames"
    assert "--camera" not in result.stderr  # no warning: nothing secret was typed
    # the command line wins: a missing file given with --camera fails although the variable
    # names a good one
    missing = run_cli_subprocess(
        ["run", "--frames", "1", "--camera", "front_camera=missing.avi"], cwd=root, env=env
    )
    assert missing.exit_code != 0 and "missing.avi" in missing.stderr, missing.describe()


def test_run_without_a_source_names_the_variable_too(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    result = run_cli_subprocess(["run", "--frames", "1"], cwd=root)
    assert result.exit_code == 2
    assert "PANORAMA_CAMERA_FRONT_CAMERA" in result.stderr, result.describe()
