"""Exporting an image's flattened filesystem as a tar stream (``export_filesystem``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from panorama_cli.build import docker_client
from panorama_cli.build.docker_containers import _create_container, _remove_container

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

#: Bytes per chunk of a filesystem export.
EXPORT_CHUNK = 1024 * 1024


@contextlib.contextmanager
def export_filesystem(
    image: str,
    *,
    platform: str | None = None,
    chunk_size: int = EXPORT_CHUNK,
    client: docker.DockerClient | None = None,
) -> Iterator[Iterator[bytes]]:
    """Stream an image's flattened filesystem as an uncompressed tar.

    A container is created from the image (never started) and exported; the container is
    always removed when the ``with`` block ends, also on an exception or Ctrl-C.

    Usage::

        with export_filesystem("people_counter:1.0") as chunks:
            asset = assets.store_stream(chunks, assets_dir)

    Args:
        image: image name or id.
        platform: ``"linux/arm64"``/``"linux/amd64"`` to pick that variant of the image.
        chunk_size: bytes per yielded chunk (the last one may be shorter).
        client: a client from :func:`connect` (default: connect from the environment).

    Yields:
        An iterator of ``bytes`` chunks of the tar stream.

    Raises:
        UserError: the image is missing (build or pull it), or the engine refuses.
    """
    own_client = client is None
    client = client or docker_client.connect()
    try:
        container = _create_container(client, image, ["/bin/true"], platform, "export")
        chunks = None
        try:
            chunks = container.export(chunk_size=chunk_size)
            yield chunks
        except BaseException:
            _close(chunks)
            _remove_container(container, quiet=True)
            raise
        _close(chunks)
        _remove_container(container, quiet=False)
    finally:
        if own_client:
            client.close()


def _close(gen: object) -> None:
    close = getattr(gen, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()
