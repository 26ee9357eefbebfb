"""Where the repository and the shared reference material (../shared) are."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
APPS = SHARED / "apps"
OFFICIAL_SCHEMAS = SHARED / "conformance" / "manifest-schema"
SERVICE_MODEL = SHARED / "reference" / "panorama-2019-07-24.service-2.json"
VIDEO = SHARED / "data" / "vtest.avi"
