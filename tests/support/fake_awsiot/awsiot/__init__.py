"""Stand-in for the AWS IoT Device SDK v2 (tests only: see ../README.md)."""
