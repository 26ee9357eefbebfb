"""Import optional dependencies where they are used, with one clear error when missing.

backpack imports with only numpy and the standard library. boto3 (AutoIdentity,
CWTachometer, KVS credentials), OpenCV (OpenCVImageAnnotationDriver) and PyGObject with
GStreamer (SkyLine, KVSSkyLine, RTSPSkyLine) are imported by the functions that need them
through :func:`require`, so a missing piece is named once, with how to install it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from backpack.errors import MissingDependencyError

#: What to install for each optional module, as shown in the error message.
INSTALL_HINTS: dict[str, str] = {
    "boto3": "pip install boto3",
    "cv2": "pip install opencv-python-headless",
    "gi": (
        "install PyGObject < 3.51 and GStreamer (Debian: gir1.2-gstreamer-1.0 "
        "gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-good; pip install 'PyGObject<3.51'), "
        "or create the package with `panorama-cli create-package --gstreamer`"
    ),
    "dotenv": "pip install python-dotenv",
    "av": "pip install av",
}


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature`` or raise :class:`MissingDependencyError`.

    Args:
        module: top-level module name, e.g. ``"cv2"``, ``"boto3"``, ``"gi"``.
        feature: what needs it, e.g. ``"OpenCVImageAnnotationDriver"``.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = INSTALL_HINTS.get(module.split(".")[0], f"pip install {module}")
        raise MissingDependencyError(
            f"{feature} needs the Python module '{module}', which is not installed: {hint}"
        ) from exc
