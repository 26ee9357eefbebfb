"""Where the repository and the shared reference material (../shared) are.

``PANORAMA_SHARED_DIR`` names another folder for ../shared (tests/test_shared_data.py points it
at a missing one to check that a clone without it still passes).
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PANORAMA_SHARED_DIR") or REPO.parent / "shared")
APPS = SHARED / "apps"
OFFICIAL_SCHEMAS = SHARED / "conformance" / "manifest-schema"
SERVICE_MODEL = SHARED / "reference" / "panorama-2019-07-24.service-2.json"
VIDEO = SHARED / "data" / "vtest.avi"
