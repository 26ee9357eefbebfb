"""The project model: folder, node packages, manifests, application graph, validation."""
