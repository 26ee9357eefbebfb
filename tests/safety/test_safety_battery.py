"""Issue 8: a hypothesis battery over the official sample apps' manifests and every command
that reads them (not only validate).

Each example mutates one manifest of a copy of an official sample (a subtree replaced by any
JSON value, or the text broken: truncated, NaN, a duplicate key, UTF-16, empty) and runs each
command on a fresh copy. Every run must end with exit 0, 1 or 2, at most one error line on
stderr and no traceback; a run that fails must leave every file as it was.

Commands that would reach AWS or Docker run against endpoints that refuse at once (a closed
port on 127.0.0.1, a missing Docker socket): they read and check the manifests first, which is
what is under test. The tally (runs tried / runs that held every property) is printed at the
end of the module (``pytest -s``) and written to $PANORAMA_BATTERY_TALLY when set.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.project.test_fuzz import _mutate, json_values
from tests.support.ci import unavailable
from tests.support.paths import APPS
from tests.support.project_helpers import make_model_archive, run, snapshot

MODEL_PKG = "packages/123456789012-SQUEEZENET_PYTORCH-1.0"
CODE_PKG = {
    "debug-server": "packages/123456789012-DEBUG_SERVER-1.0",
    "aws-panorama-sample": "packages/123456789012-SAMPLE_CODE-1.0",
}
OFFLINE = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_ACCESS_KEY_ID": "battery",
    "AWS_SECRET_ACCESS_KEY": "battery",
    "AWS_REGION": "us-east-1",
    "AWS_PROFILE": None,
    "DOCKER_HOST": "unix:///nonexistent/panorama-battery.sock",
    "PANORAMA_ACCOUNT_ID": None,
}


def commands(app: str, archive: Path) -> list[list[str]]:
    code = CODE_PKG[app]
    return [
        ["validate"],
        ["add-panorama-package", "--type", "camera", "--name", "battery_cam"],
        [
            "create-package",
            "--name",
            "battery_pkg",
            "--type",
            "Model",
            "--account-id",
            "123456789012",
        ],
        ["import-application", "--account-id", "210987654321"],
        [
            "add-raw-model",
            "--model-asset-name",
            "battery_model",
            "--model-local-path",
            str(archive),
            "--descriptor-path",
            f"{MODEL_PKG}/descriptor.json",
            "--packages-path",
            MODEL_PKG,
        ],
        [
            "export-container",
            "--container-asset-name",
            "battery_code",
            "--container-image-uri",
            "battery:1",
            "--package-path",
            code,
        ],
        ["deploy", "--target", "panorama", "--device-id", "device-battery", "--name", "battery"],
        ["package-application", "--no-wait"],
    ]


def targets(root: Path) -> list[str]:
    found = [
        *root.glob("graphs/*/*.json"),
        *root.glob("packages/*/*.json"),
        *root.glob("assets/*.json"),
    ]
    return sorted(str(p.relative_to(root)) for p in found if p.name != "squeezenet_classes.json")


def _dup_first_key(text: str) -> str:
    data = json.loads(text)
    if not isinstance(data, dict) or not data:
        return text + "{"
    key = next(iter(data))
    body = json.dumps(data, indent=4)
    return body.replace("{", "{\n" + json.dumps(key) + ": null,", 1)


TEXT_BREAKS = {
    "truncate": lambda text, n: text[: n % max(len(text), 1)],
    "nan": lambda text, n: text.replace(":", ': NaN, "x":', 1) if ":" in text else "NaN",
    "duplicate": lambda text, n: _dup_first_key(text),
    "empty": lambda text, n: "",
    "deep": lambda text, n: "[" * (200 + n) + "]" * (200 + n),
    "utf16": lambda text, n: text,  # written as UTF-16 below
}
#: Examples per run; CI keeps the default (about 20 s). PANORAMA_BATTERY_EXAMPLES=300 for a
#: longer local run.
EXAMPLES = int(os.environ.get("PANORAMA_BATTERY_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def tally():
    counts = {"tried": 0, "survived": 0}
    yield counts
    line = f"battery: {counts['survived']} of {counts['tried']} command runs held every property"
    sys.__stderr__.write("\n" + line + "\n")
    out = os.environ.get("PANORAMA_BATTERY_TALLY")
    if out:
        Path(out).write_text(json.dumps(counts) + "\n")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    if not APPS.is_dir():
        unavailable(f"official sample apps not found at {APPS}")
    base = tmp_path_factory.mktemp("battery")
    make_model_archive(base / "model.tar.gz", b"battery weights")
    return base


def _fresh(work: Path, app: str, name: str) -> Path:
    root = work / name
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(APPS / app, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# every text break once on a package.json and on graph.json, whatever hypothesis draws
@example(app="debug-server", pick=5, how="deep", where=[], value=None, n=5000)
@example(app="debug-server", pick=2, how="utf16", where=[], value=None, n=0)
@example(app="aws-panorama-sample", pick=2, how="nan", where=[], value=None, n=0)
@example(app="aws-panorama-sample", pick=8, how="duplicate", where=[], value=None, n=0)
@example(app="debug-server", pick=4, how="truncate", where=[], value=None, n=37)
@given(
    app=st.sampled_from(sorted(CODE_PKG)),
    pick=st.integers(0, 100),
    how=st.sampled_from(["subtree", "whole", *TEXT_BREAKS]),
    where=st.lists(st.integers(0, 50), max_size=6),
    value=json_values,
    n=st.integers(0, 10_000),
)
def test_every_command_survives_a_mutated_manifest(work, tally, app, pick, how, where, value, n):
    template = _fresh(work, app, "template")
    names = targets(template)
    target = names[pick % len(names)]
    text = (template / target).read_text()
    if how == "subtree":
        mutated = json.dumps(_mutate(json.loads(text), where, value), indent=4)
    elif how == "whole":
        mutated = json.dumps(value)
    else:
        mutated = TEXT_BREAKS[how](text, n)
    archive = work / "model.tar.gz"
    for args in commands(app, archive):
        root = _fresh(work, app, "run")
        (root / target).write_text(mutated, encoding="utf-16" if how == "utf16" else "utf-8")
        before = snapshot(root)
        result = run(root, *args, env=OFFLINE)
        tally["tried"] += 1
        context = f"{how} {target} -> {result.describe()}"
        assert result.exception is None, context
        assert result.exit_code in (0, 1, 2), context
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, context
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert len(errors) <= 1, context
        if result.exit_code != 0:
            assert len(errors) == 1, context
            assert snapshot(root) == before, context
        tally["survived"] += 1
