"""panorama-cli: scaffold, validate, build and package AWS Panorama-format applications."""

__version__ = "0.1.0"
