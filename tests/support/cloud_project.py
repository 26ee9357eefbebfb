"""A project with several model packages, ready for package-application (no Docker needed).

Used by tests/cloud/test_package_application.py and benchmarks/package_application.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.project_helpers import make_model_archive, model_descriptor, run

ACCOUNT = "123456789012"  # moto's account id, so STS and the graph agree


def make_app(base: Path, packages: int = 2, *, payload_size: int = 1024, name: str = "app") -> Path:
    """init-project + ``packages`` model packages, each with its own model asset.

    Args:
        base: folder to create the project in.
        packages: number of model packages (named ``model_0``, ``model_1``, ...).
        payload_size: bytes of (incompressible) model payload per archive.

    Returns:
        The project root. ``panorama-cli validate`` passes on it.
    """
    import os

    result = run(base, "init-project", "--name", name, "--account-id", ACCOUNT)
    assert result.exit_code == 0, result.describe()
    root = base / name
    for i in range(packages):
        pkg_name = f"model_{i}"
        result = run(root, "create-package", "--name", pkg_name, "--type", "Model")
        assert result.exit_code == 0, result.describe()
        folder = f"packages/{ACCOUNT}-{pkg_name}-1.0"
        model_descriptor(root / folder / "descriptor.json")
        archive = make_model_archive(base / f"{pkg_name}.tar.gz", os.urandom(payload_size))
        result = run(
            root,
            "add-raw-model",
            "--model-asset-name",
            f"{pkg_name}_asset",
            "--model-local-path",
            str(archive),
            "--descriptor-path",
            f"{folder}/descriptor.json",
            "--packages-path",
            folder,
        )
        assert result.exit_code == 0, result.describe()
    return root


def package_folder(i: int) -> str:
    return f"packages/{ACCOUNT}-model_{i}-1.0"
