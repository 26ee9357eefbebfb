"""greengrass.render: the component recipe (Greengrass v2 developer guide, recipe reference)."""

from __future__ import annotations

import base64
import dataclasses
import json
import shlex

import pytest

from panorama_cli.fleet import greengrass, model
from panorama_cli.fleet.greengrass import ImageArchive
from tests.fleet.sample_app import sample_app

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
    assert paths == [f"recipes/{_name(app)}-{app.semver}.json", "secrets/cameras.json"]
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
        }
    }
    default = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert default == {
        "cameras": {"front_door": f"{model.CAMERAS_DIR}/front_door.avi", "lobby": ""},
        "parameters": {"threshold": "0.6"},
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
    app = sample_app(device="cuda")
    recipe = _recipe(app, archives=_archives(app))
    lifecycle = recipe["Manifests"][0]["Lifecycle"]
    run, env = lifecycle["Run"]["Script"], lifecycle["Run"]["Setenv"]
    name = _name(app)
    assert env == {
        "PANORAMA_CLI_WORK": "{work:path}",
        "PANORAMA_CLI_ARTIFACTS": "{artifacts:path}",
        "PANORAMA_CLI_CAMERA_0": "{configuration:/cameras/front_door}",
        "PANORAMA_CLI_CAMERA_1": "{configuration:/cameras/lobby}",
        "PANORAMA_CLI_PARAM_0": "{configuration:/parameters/threshold}",
    }
    # recipe variables only in Setenv: the nucleus' raw substitution never reaches the shell
    assert "{configuration:" not in run and "{work:" not in run and "{artifacts:" not in run
    assert (
        f"docker volume create --driver local --opt type=tmpfs --opt device=tmpfs --opt o=size={model.SHM_SIZE_BYTES} {name}-shm"
        in run
    )
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
    assert '-v "$PANORAMA_CLI_WORK/secrets":/run/secrets:ro' in run
    assert (
        f'-v "$PANORAMA_CLI_ARTIFACTS"/front_door.avi:{model.CAMERAS_DIR}/front_door.avi:ro' in run
    )
    assert '--camera front_door="$PANORAMA_CLI_CAMERA_0"' in run
    assert "--camera lobby=@/run/secrets/camera-lobby" in run
    assert '--param threshold="$PANORAMA_CLI_PARAM_0"' in run
    assert 'printf \'%s\' "$PANORAMA_CLI_CAMERA_1" > "$secrets"/camera-lobby' in run
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
    recipe, secrets = files
    assert SECRET.encode() not in recipe.content
    assert b"s3cret" not in recipe.content and b"admin:" not in recipe.content
    assert not recipe.private
    assert secrets.private and json.loads(secrets.content) == {"lobby": SECRET}
    # without secret cameras: no secret file
    no_secret = dataclasses.replace(
        app,
        cameras={"front_door": app.cameras["front_door"]},
        secrets=(),
    )
    assert [f.path for f in greengrass.render(no_secret, component_name=_name(app))] == [
        f"recipes/{_name(app)}-{app.semver}.json"
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
