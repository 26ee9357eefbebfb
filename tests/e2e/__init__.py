"""End-to-end tests: real Docker builds, the official sample apps through the whole CLI."""
