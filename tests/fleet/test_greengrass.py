"""greengrass.render: the component recipe (Greengrass v2 developer guide, recipe reference)."""

from __future__ import annotations

import base64
import dataclasses
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from panorama_cli.fleet import greengrass, greengrass_secret, model
from panorama_cli.fleet.greengrass import ImageArchive
from panorama_cli.localrun.apps.limits import NodeLimits
from panorama_cli.localrun.frames import identity
from tests.fleet.sample_app import KEY, SERVE_TOKEN, cuda_app, sample_app
from tests.support.greengrass_ipc import docker_calls, fake_docker, write_nucleus

ACCOUNT = "123456789012"
SECRET = "rtsp://admin:s3cret@10.0.0.5:554/stream1"


def _name(app: model.FleetApp) -> str:
    return greengrass.component_name_for(ACCOUNT, app.name)


def _archives(app: model.FleetApp) -> dict[str, ImageArchive]:
    name = _name(app)
    return {
        image: ImageArchive(
            image, greengrass.archive_path(name, app.semver, image), f"{i:02x}" * 32, 1000 + i
        )
        for i, image in enumerate(app.images)
    }


def _recipe(app: model.FleetApp, **kwargs) -> dict:
    files = greengrass.render(app, component_name=_name(app), **kwargs)
    recipe_file = next(f for f in files if f.path.startswith("recipes/"))
    return json.loads(recipe_file.content)


def test_component_name():
    name = greengrass.component_name_for(ACCOUNT, "people-counter")
    assert name == "com.panorama-cli.123456789012.people-counter"
    assert greengrass.COMPONENT_NAME.match(name)
    odd = greengrass.component_name_for(ACCOUNT, "a:b/c d" + "x" * 200)
    assert greengrass.COMPONENT_NAME.match(odd) and ":" not in odd and len(odd) <= 128


def test_recipe_shape_with_archives():
    app = sample_app()
    files = greengrass.render(app, component_name=_name(app), archives=_archives(app))
    paths = [f.path for f in files]
    assert paths == [
        f"recipes/{_name(app)}-{app.semver}.json",
        "secrets/cameras.json",
        "secrets/control.json",
    ]
    recipe = json.loads(files[0].content)
    assert recipe["RecipeFormatVersion"] == "2020-01-25"
    assert recipe["ComponentName"] == _name(app)
    assert recipe["ComponentVersion"] == app.semver == "1.0.19088743"
    assert recipe["ComponentPublisher"] == "panorama-cli"
    assert recipe["ComponentDescription"]
    assert recipe["ComponentDependencies"] == {
        "aws.greengrass.DockerApplicationManager": {
            "VersionRequirement": ">=2.0.0",
            "DependencyType": "HARD",
        },
        "aws.greengrass.SecretManager": {
            "VersionRequirement": ">=2.0.0 <3.0.0",
            "DependencyType": "HARD",
        },
    }
    default = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    placeholder = greengrass.SECRET_ARN_PLACEHOLDER
    assert default == {
        # the secret camera is not in the configuration at all: only in the secret
        "cameras": {"front_door": f"{model.CAMERAS_DIR}/front_door.avi"},
        "parameters": {"threshold": "0.6"},
        "secret": {"arn": placeholder},
        "accessControl": {
            "aws.greengrass.SecretManager": {
                f"{_name(app)}:secrets:1": {
                    "policyDescription": default["accessControl"]["aws.greengrass.SecretManager"][
                        f"{_name(app)}:secrets:1"
                    ]["policyDescription"],
                    "operations": ["aws.greengrass#GetSecretValue"],
                    "resources": [placeholder],
                }
            }
        },
    }
    (manifest,) = recipe["Manifests"]
    assert manifest["Platform"] == {"os": "linux", "architecture": "amd64"}
    artifacts = manifest["Artifacts"]
    prefix = f"s3://{greengrass.BUCKET_PLACEHOLDER}/artifacts/{_name(app)}/{app.semver}/"
    assert [a["Uri"] for a in artifacts] == [
        prefix + "panorama-cli_people-counter-serve_0123456789ab.tar",
        prefix + "panorama-cli_people-counter-node-people-counter_fedcba987654.tar",
        prefix + "cameras/front_door.avi",
    ]
    for i, artifact in enumerate(artifacts[:2]):
        assert artifact["Algorithm"] == "SHA-256"
        assert base64.b64decode(artifact["Digest"]) == bytes([i]) * 32
        assert artifact["Unarchive"] == "NONE" and artifact["Permission"] == {"Read": "OWNER"}
    # no digest known for the camera file (deploy adds it) unless given
    assert "Digest" not in artifacts[2]
    with_digest = _recipe(
        app, archives=_archives(app), file_digests={"cameras/front_door.avi": "ff" * 32}
    )
    camera = with_digest["Manifests"][0]["Artifacts"][2]
    assert camera["Algorithm"] == "SHA-256" and base64.b64decode(camera["Digest"]) == b"\xff" * 32
    lifecycle = manifest["Lifecycle"]
    assert set(lifecycle) == {"Install", "Run", "Shutdown"}
    install = lifecycle["Install"]["Script"]
    for image, archive in _archives(app).items():
        assert (
            f"docker image inspect {shlex.quote(image)} >/dev/null 2>&1 || docker load -i"
            in install
        )
        assert archive.filename in install
    assert lifecycle["Install"]["Setenv"] == {"PANORAMA_CLI_ARTIFACTS": "{artifacts:path}"}


def test_run_and_shutdown_scripts():
    app = cuda_app()
    recipe = _recipe(app, archives=_archives(app))
    lifecycle = recipe["Manifests"][0]["Lifecycle"]
    run, env = lifecycle["Run"]["Script"], lifecycle["Run"]["Setenv"]
    name = _name(app)
    assert env == {
        "PANORAMA_CLI_WORK": "{work:path}",
        "PANORAMA_CLI_ARTIFACTS": "{artifacts:path}",
        "PANORAMA_CLI_CAMERA_0": "{configuration:/cameras/front_door}",
        "PANORAMA_CLI_PARAM_0": "{configuration:/parameters/threshold}",
        "PANORAMA_CLI_SECRET_ID": "{configuration:/secret/arn}",
    }
    # recipe variables only in Setenv: the nucleus' raw substitution never reaches the shell
    assert "{configuration:" not in run and "{work:" not in run and "{artifacts:" not in run
    # no shared /dev/shm (frame rings travel as descriptors); the nodes' control folder is ro
    assert "shm" not in run and "tmpfs --opt" not in run
    assert f"{name}-control:{model.CONTROL_DIR}:ro" in run
    for volume in app.volumes:
        assert f"{name}-{volume}" in run
    assert f"--name {name}-people-counter" in run and "--restart unless-stopped" in run
    assert (
        "--read-only" in run
        and "--cap-drop ALL" in run
        and "--security-opt no-new-privileges" in run
    )
    assert f"exec docker run \\\n  --rm \\\n  --name {name}-serve" in run
    assert "--gpus all" in run
    assert '-v "$PANORAMA_CLI_WORK/secrets"/serve-token:/run/secrets/serve-token:ro' in run
    assert (
        f'-v "$PANORAMA_CLI_ARTIFACTS"/front_door.avi:{model.CAMERAS_DIR}/front_door.avi:ro' in run
    )
    assert '--camera front_door="$PANORAMA_CLI_CAMERA_0"' in run
    assert "--camera lobby=@/run/secrets/camera-lobby" in run
    assert '--param threshold="$PANORAMA_CLI_PARAM_0"' in run
    assert "printf" not in run  # every secret file is the fetcher's
    shutdown = lifecycle["Shutdown"]["Script"]
    assert f"docker stop -t 20 {name}-serve {name}-people-counter" in shutdown
    assert f"docker rm -f {name}-serve {name}-people-counter" in shutdown
    assert "volume" not in shutdown
    # no GPU on a CPU app
    assert (
        "--gpus"
        not in _recipe(sample_app(), archives=_archives(sample_app()))["Manifests"][0]["Lifecycle"][
            "Run"
        ]["Script"]
    )


def _docker_runs(app: model.FleetApp) -> dict[str, str]:
    """Container name -> its ``docker run`` command in the Run script (one text each)."""
    script = _recipe(app, archives=_archives(app))["Manifests"][0]["Lifecycle"]["Run"]["Script"]
    runs = {}
    for chunk in script.split("docker run")[1:]:
        command = chunk.split(">/dev/null")[0]
        runs[command.split("--name ", 1)[1].split()[0]] = command
    return runs


def test_cuda_gives_the_app_container_its_gpus():
    """An app that runs its models itself: its node's docker run has --gpus all, serve's (no
    model node to run) none; with model nodes serve has it and the node not."""
    name = _name(sample_app())
    runs = _docker_runs(cuda_app(serve=False, node=True))
    assert "--gpus all" in runs[f"{name}-people-counter"]
    assert "--gpus" not in runs[f"{name}-serve"]
    runs = _docker_runs(cuda_app(serve=True, node=False))
    assert "--gpus" not in runs[f"{name}-people-counter"]
    assert "--gpus all" in runs[f"{name}-serve"]


def test_registry_images_are_docker_artifacts():
    app = sample_app()
    recipe = _recipe(app)
    manifest = recipe["Manifests"][0]
    uris = [a["Uri"] for a in manifest["Artifacts"]]
    assert uris[:2] == [f"docker:{image}" for image in app.images]
    assert manifest["Artifacts"][0] == {"Uri": f"docker:{app.images[0]}"}
    assert uris[2].startswith(f"s3://{greengrass.BUCKET_PLACEHOLDER}/")
    assert "Install" not in manifest["Lifecycle"]


def test_no_secret_in_the_recipe():
    app = sample_app()
    files = greengrass.render(app, component_name=_name(app), archives=_archives(app))
    recipe, secrets, control = files
    assert SECRET.encode() not in recipe.content
    assert b"s3cret" not in recipe.content and b"admin:" not in recipe.content
    assert not recipe.private
    assert secrets.private and json.loads(secrets.content) == {"lobby": SECRET}
    # the control key and the node's token: only in the private control file
    token = identity.node_token(KEY, "people_counter")
    assert control.private and json.loads(control.content) == {
        "key": KEY.hex(),
        "tokens": {"people_counter": token},
        "serve": SERVE_TOKEN,
    }
    assert KEY.hex().encode() not in recipe.content and token.encode() not in recipe.content
    assert SERVE_TOKEN.encode() not in recipe.content
    # without secret cameras: no cameras file
    no_secret = dataclasses.replace(
        app,
        cameras={"front_door": app.cameras["front_door"]},
        secrets=tuple(s for s in app.secrets if s.kind != "camera"),
    )
    assert [f.path for f in greengrass.render(no_secret, component_name=_name(app))] == [
        f"recipes/{_name(app)}-{app.semver}.json",
        "secrets/control.json",
    ]


def test_values_are_quoted():
    """A parameter, image or mount with shell metacharacters is one word in the scripts."""
    app = sample_app()
    evil = "x'; touch /tmp/pwned; echo '$(id)`id`"
    serve = dataclasses.replace(app.serve, args=(*app.serve.args, "--title", evil))
    app = dataclasses.replace(app, serve=serve, params={"threshold": evil})
    run = _recipe(app)["Manifests"][0]["Lifecycle"]["Run"]["Script"]
    assert shlex.quote(evil) in run
    # the parameter's value is not in the script at all: it comes from the configuration
    assert _recipe(app)["ComponentConfiguration"]["DefaultConfiguration"]["parameters"] == {
        "threshold": evil
    }
    assert run.count(shlex.quote(evil)) == 1  # the serve argument, not the parameter


def test_deterministic():
    app = sample_app()
    a = greengrass.render(app, component_name=_name(app), archives=_archives(app))
    b = greengrass.render(sample_app(), component_name=_name(app), archives=_archives(app))
    assert a == b
    text = a[0].content.decode()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_aarch64_platform():
    app = sample_app(platform="linux/arm64")
    assert _recipe(app)["Manifests"][0]["Platform"] == {"os": "linux", "architecture": "aarch64"}
    with pytest.raises(ValueError, match="platform"):
        greengrass.render(sample_app(platform="linux/s390x"), component_name=_name(app))


def test_bad_inputs():
    app = sample_app()
    with pytest.raises(ValueError, match="component name"):
        greengrass.render(app, component_name="bad:name")
    archives = _archives(app)
    archives.pop(app.images[1])
    with pytest.raises(ValueError, match="no image archive"):
        greengrass.render(app, component_name=_name(app), archives=archives)


ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:panorama-cli/app-AbCdEf"


def _run_step(app: model.FleetApp, tmp_path: Path, config: dict[str, Any], nucleus: bool = True):
    """Run, by /bin/sh with a stand-in ``docker`` (:func:`tests.support.greengrass_ipc.
    fake_docker`: the fetch container runs here) and, with ``nucleus``, a stand-in nucleus
    holding the app's secret."""
    recipe = _recipe(app)
    run = recipe["Manifests"][0]["Lifecycle"]["Run"]
    tmp_path.mkdir(exist_ok=True)
    env, log = fake_docker(tmp_path)
    if nucleus:
        value = greengrass_secret.secret_value(
            {"lobby": SECRET}, greengrass.control_configuration(app)
        )
        env.update(write_nucleus(tmp_path / "ipc.socket", {ARN: value}))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    values = {"{work:path}": str(work), "{artifacts:path}": str(tmp_path / "artifacts")}
    for key, value in run["Setenv"].items():
        if value.startswith("{configuration:"):
            where: Any = config
            for part in value[len("{configuration:/") : -1].split("/"):
                where = where[part]
            env[key] = where
        else:
            env[key] = values[value]
    done = subprocess.run(["/bin/sh", "-c", run["Script"]], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    return done, docker_calls(log), work


def _deployed(app: model.FleetApp) -> dict[str, Any]:
    """The component's configuration as a deployment by panorama-cli leaves it."""
    config = _recipe(app)["ComponentConfiguration"]["DefaultConfiguration"]
    return {**config, **greengrass.secret_configuration(_name(app), ARN)}


@pytest.mark.parametrize(
    ("limits", "memory", "pids", "log_size", "tmp"),
    [
        (None, "4g", "512", "64m", 256 << 20),
        (NodeLimits(memory=1 << 30, pids=100, storage=1 << 30), "1g", "100", "32m", 128 << 20),
    ],
    ids=["defaults", "explicit"],
)
def test_run_starts_each_node_with_its_limits_and_only_its_token(
    tmp_path: Path, limits: NodeLimits | None, memory: str, pids: str, log_size: str, tmp: int
) -> None:
    """The Run script, run by /bin/sh with a stand-in ``docker``: the fetcher writes the
    secret files; the node container gets its limits and its own token file; serve the
    secrets folder with the control key."""
    app = sample_app(limits=limits)
    control = greengrass.control_configuration(app)
    config = _deployed(app)
    done, calls, work = _run_step(app, tmp_path, config)
    assert done.returncode == 0, done.stderr
    runs = [c for c in calls if c[:1] == ["run"]]
    fetch, node, serve = runs
    assert fetch[fetch.index("--name") + 1] == f"{_name(app)}-secrets"
    assert node[node.index("--memory") + 1] == memory
    assert node[node.index("--memory-swap") + 1] == memory
    assert node[node.index("--pids-limit") + 1] == pids
    assert node[node.index("--log-driver") + 1] == "json-file"
    assert f"max-size={log_size}" in node and "max-file=2" in node
    assert node[node.index("--tmpfs") + 1] == f"/tmp:size={tmp}"
    token_file = work / "tokens" / "people-counter.token"
    assert f"{token_file}:{model.NODE_TOKEN_FILE}:ro" in node
    assert not [a for a in node if "/secrets:" in a or "control.key" in a]
    assert identity.token_matches(KEY, "people_counter", token_file.read_text())
    assert token_file.stat().st_mode & 0o777 == 0o644
    assert (work / "tokens").stat().st_mode & 0o777 == 0o700
    # serve: each of its secret files on its own (0644 in the 0700 folder: serve's user owns
    # no file of the box), its own limits, no node token
    for name in ("camera-lobby", "control.key", "serve-token"):
        assert f"{work}/secrets/{name}:{model.SECRETS_DIR}/{name}:ro" in serve
        assert (work / "secrets" / name).stat().st_mode & 0o777 == 0o644
    assert (work / "secrets").stat().st_mode & 0o777 == 0o700
    assert serve[serve.index("--memory") + 1] == "8g" and serve[serve.index("--cpus") + 1] == "2"
    assert not [a for a in serve if "tokens" in a]
    assert identity.read_key(work / "secrets" / "control.key") == KEY
    assert (work / "secrets" / "serve-token").read_text() == SERVE_TOKEN
    assert (work / "secrets" / "camera-lobby").read_text() == SECRET
    # nobody runs as root; every container without capabilities, new privileges, or more
    for run, user in ((node, model.NODE_UID_BASE), (serve, model.SERVE_UID)):
        assert run[run.index("--user") + 1] == f"{user}:{model.APP_GID}"
        assert run[run.index("--cap-drop") + 1] == "ALL" and "--read-only" in run
        assert run[run.index("--security-opt") + 1] == "no-new-privileges"
    # published on the --listen host only
    app = sample_app(limits=limits, listen_host="127.0.0.1")
    done, calls, work = _run_step(app, tmp_path / "local", config)
    assert done.returncode == 0, done.stderr
    serve = [c for c in calls if c[:1] == ["run"]][-1]
    assert serve[serve.index("-p") + 1] == "127.0.0.1:8765:8765"
    # no key, token or password on any docker command line
    seen = "\n".join("\0".join(c) for c in calls)
    assert KEY.hex() not in seen and control["tokens"]["people_counter"] not in seen
    assert SERVE_TOKEN not in seen and "s3cret" not in seen


def test_run_without_a_deployed_secret_says_so(tmp_path: Path) -> None:
    app = sample_app()
    config = _recipe(app)["ComponentConfiguration"]["DefaultConfiguration"]
    config = {**config, "secret": {"arn": ""}}
    done, calls, _ = _run_step(app, tmp_path, config)
    assert done.returncode == 1 and "no secret in the configuration" in done.stderr
    assert not [c for c in calls if c[:1] == ["run"]]


def test_run_outside_the_nucleus_says_so(tmp_path: Path) -> None:
    app = sample_app()
    done, calls, _ = _run_step(app, tmp_path, _deployed(app), nucleus=False)
    assert done.returncode == 1 and "no Greengrass IPC socket or SVCUID" in done.stderr
    assert not [c for c in calls if c[:1] == ["run"]]
