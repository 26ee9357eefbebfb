"""Building locally: assets, raw model archives, container images, scaffolding."""
