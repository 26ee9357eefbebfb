"""Shared pytest configuration.

Fixtures live in tests/support/*_fixtures.py, one module per concern, registered here.
"""

pytest_plugins = [
    "tests.support.docker_fixtures",
    "tests.support.aws_fixtures",
    "tests.support.gstreamer",
    "tests.support.panorama_fixtures",
]
