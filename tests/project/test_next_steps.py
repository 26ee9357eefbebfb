"""The next step a command suggests is one that works without the retired Panorama service:
after build-container and validate, run --in-container and export (never
package-application)."""

from __future__ import annotations

from panorama_cli.commands.build_container import NEXT_STEP
from tests.localrun.helpers import make_project
from tests.support.project_helpers import run


def test_build_container_suggests_running_the_image_and_exporting():
    assert NEXT_STEP.startswith("panorama-cli run --in-container, then panorama-cli export")
    assert "package-application" not in NEXT_STEP


def test_validate_suggests_the_local_steps(tmp_path):
    root = make_project(tmp_path, "print('x')\n", params={}, hdmi=False)
    result = run(root, "validate")
    assert result.exit_code == 0, result.stderr
    assert "package-application" not in result.stderr + result.stdout
    assert "not built yet; `run` works without it, `run --in-container` and export need it" in (
        result.stdout
    )
    [next_step] = [line for line in result.stderr.splitlines() if "Next:" in line]
    assert next_step.strip().startswith("Next: panorama-cli run (locally), or panorama-cli ")
    assert next_step.endswith("before panorama-cli run --in-container and export")
