"""The validator never raises, whatever JSON the manifests hold (hypothesis)."""

import json
import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panorama_cli.project.project import Project
from panorama_cli.project.validation import validate_project
from tests.support.paths import APPS
from tests.support.shared import require

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
KEYS = [
    "nodeGraph",
    "nodePackage",
    "packages",
    "nodes",
    "edges",
    "name",
    "version",
    "interface",
    "producer",
    "consumer",
    "assets",
    "interfaces",
    "implementations",
    "assetUri",
    "inputs",
    "outputs",
    "type",
    "envelopeVersion",
    "asset",
    "descriptorUri",
    "runtimeDescriptor",
    "mlModelDescriptor",
    "networkRoutingRules",
    "node",
    "nodeGraphOverrides",
    "nodeOverrides",
]
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=25,
)


def _mutate(value, path, replacement):
    if not path:
        return replacement
    head, *rest = path
    if isinstance(value, dict) and value:
        key = list(value)[head % len(value)]
        value[key] = _mutate(value[key], rest, replacement)
    elif isinstance(value, list) and value:
        value[head % len(value)] = _mutate(value[head % len(value)], rest, replacement)
    return value


def _setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "app"
    require(APPS / "debug-server")
    shutil.copytree(APPS / "debug-server", root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


TARGETS = [
    "graphs/my-app/graph.json",
    "graphs/my-app/override.json",
    "packages/123456789012-DEBUG_SERVER-1.0/package.json",
    "packages/123456789012-DEBUG_SERVER-1.0/descriptor.json",
    "packages/123456789012-SQUEEZENET_PYTORCH-1.0/package.json",
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    target=st.sampled_from(TARGETS),
    path=st.lists(st.integers(0, 50), max_size=6),
    replacement=json_values,
    whole=st.booleans(),
)
def test_validator_never_raises(tmp_path_factory, target, path, replacement, whole):
    root = _setup(tmp_path_factory)
    file = root / target
    original = json.loads(file.read_text())
    data = replacement if whole else _mutate(original, path, replacement)
    file.write_text(json.dumps(data))
    problems = validate_project(Project(root))
    assert all(p.message for p in problems)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(target=st.sampled_from(TARGETS), text=st.text(max_size=40))
def test_validator_reports_garbage_text(tmp_path_factory, target, text):
    root = _setup(tmp_path_factory)
    (root / target).write_text(text)
    problems = validate_project(Project(root))
    assert problems  # garbage is never accepted silently
