"""The Greengrass component's secret fetcher: writes the app's credentials into files on the
core device, from the secret that ``deploy --target greengrass`` keeps in AWS Secrets Manager.

The component's Run step starts it, before any container of the app, as a one-shot container
of the serve image (whose Python has the AWS IoT Device SDK v2, ``awsiotsdk``)::

    python -m panorama_cli.fleet.greengrass_fetch --secret-id ARN --out DIR PATH=POINTER...

It asks the Greengrass nucleus for the secret over IPC: ``GetSecretValue`` of the
``aws.greengrass.SecretManager`` component (Greengrass v2 developer guide, "Retrieve secret
values"), through ``awsiot.greengrasscoreipc.connect()``, which reads the socket's path from
``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT`` and the component's IPC token from
``SVCUID`` (the nucleus gives both to the component's lifecycle; the Run step passes them into
the container: "Use interprocess communication in Docker container components"). The secret
is a JSON object (``{"cameras": {node: URL}, "control": {"key", "tokens": {node: token},
"serve"}}``, :func:`panorama_cli.fleet.greengrass_secret.secret_value`); each ``PATH=POINTER``
writes the string at the JSON pointer ``POINTER`` (RFC 6901) into ``DIR/PATH``.

Each file is written through a descriptor of its folder (which must exist: the Run step makes
it, mode 0700), never following a link, into a new temporary file renamed over the old one
(atomic), mode 0644: the container that reads it runs as a user that owns no file of the box.
Only the standard library and ``awsiot`` are imported, so the module runs in any image that
has both. A failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Longest secret Secrets Manager keeps (SecretString: 65,536 bytes).
MAX_SECRET_BYTES = 65536
#: Seconds to wait for the nucleus: to connect, then for the answer.
CONNECT_TIMEOUT_S = 10.0
ANSWER_TIMEOUT_S = 30.0
#: Mode of each written file (see the module docstring).
FILE_MODE = 0o644
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


class FetchError(Exception):
    """A problem told in one line (the message)."""


@dataclass(frozen=True)
class Output:
    """One file to write: ``folder/name`` under the output folder, from ``pointer``.

    Attributes:
        folder: a folder name under the output folder ("" for the output folder itself).
        name: the file's name.
        pointer: the JSON pointer of its value in the secret (``/control/key``).
    """

    folder: str
    name: str
    pointer: str

    @classmethod
    def parse(cls, text: str) -> Output:
        """``PATH=POINTER``; PATH is ``NAME`` or ``FOLDER/NAME``, names of letters, digits,
        ``.``, ``_`` and ``-`` not starting with ``.`` or ``-``.

        Raises:
            FetchError: any other form.
        """
        path, sep, pointer = text.partition("=")
        parts = path.split("/")
        if not sep or len(parts) > 2 or not all(_NAME.match(p) for p in parts):
            raise FetchError(f"not PATH=POINTER with a plain relative PATH: {text!r}")
        if pointer and not pointer.startswith("/"):
            raise FetchError(f"not a JSON pointer: {pointer!r}")
        folder = parts[0] if len(parts) == 2 else ""
        return cls(folder, parts[-1], pointer)


def resolve(document: Any, pointer: str) -> Any:
    """The value at the JSON pointer ``pointer`` (RFC 6901) of ``document``.

    Raises:
        FetchError: no such value.
    """
    value = document
    for raw in pointer.split("/")[1:] if pointer else []:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise FetchError(
                f"the secret has no value at {pointer}: deploy the bundle again "
                "(panorama-cli deploy --target greengrass)"
            )
    return value


def _connect_sdk() -> Any:
    """The AWS IoT Device SDK's V2 IPC client, connected to the nucleus."""
    try:
        import awsiot.greengrasscoreipc as ipc
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    except ImportError:
        raise FetchError(
            "the AWS IoT Device SDK (awsiotsdk) is not in this image: export the application "
            "again with this panorama-cli"
        ) from None
    socket = os.environ.get("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT", "")
    if not socket or not os.environ.get("SVCUID"):
        raise FetchError(
            "no Greengrass IPC socket or SVCUID in the environment: the component's Run step "
            "passes them (run by the Greengrass nucleus only)"
        )
    try:
        connection = ipc.connect(timeout=CONNECT_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - awscrt errors, TimeoutError
        raise FetchError(
            f"cannot connect to the Greengrass nucleus at {socket}: {_one_line(exc)}"
        ) from None
    return GreengrassCoreIPCClientV2(client=connection)


def fetch(
    secret_id: str,
    *,
    connect: Callable[[], Any] = _connect_sdk,
    timeout: float = ANSWER_TIMEOUT_S,
) -> dict[str, Any]:
    """The secret ``secret_id`` (an ARN or name) from the nucleus, as a JSON object.

    Args:
        secret_id: the secret's ARN (the component's ``secret/arn`` configuration).
        connect: returns a client with ``get_secret_value_async(secret_id=...)`` (a future of
            a response whose ``secret_value.secret_string`` is the text) and ``close()``:
            ``GreengrassCoreIPCClientV2`` by default.
        timeout: longest wait for the answer, seconds.

    Raises:
        FetchError: no connection, no answer in time, a refusal (not authorized, no such
            secret on the device), or a value that is not a JSON object of at most
            :data:`MAX_SECRET_BYTES`.
    """
    client = connect()
    try:
        future = client.get_secret_value_async(secret_id=secret_id)
        response = future.result(timeout)
    except FutureTimeout:
        raise FetchError(f"no answer from the Greengrass nucleus in {timeout:g} s") from None
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the SDK's errors, by name (see the docstring)
        raise FetchError(_refusal(secret_id, exc)) from None
    finally:
        try:
            client.close()
        except Exception as exc:  # noqa: BLE001 - closing must not hide the answer
            log.debug("closing the IPC client: %s", exc)
    value = getattr(response, "secret_value", None)
    text = getattr(value, "secret_string", None)
    if not isinstance(text, str):
        raise FetchError(f"secret {secret_id} has no text value (SecretString)")
    if len(text.encode("utf-8")) > MAX_SECRET_BYTES:
        raise FetchError(f"secret {secret_id} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise FetchError(f"secret {secret_id} is not a JSON object: deploy the bundle again")
    return document


def _refusal(secret_id: str, exc: BaseException) -> str:
    kind = type(exc).__name__
    if kind == "UnauthorizedError":
        return (
            f"the component may not read secret {secret_id} (its accessControl): deploy the "
            "bundle again with panorama-cli deploy --target greengrass"
        )
    if kind == "ResourceNotFoundError":
        return (
            f"secret {secret_id} is not on this core device: aws.greengrass.SecretManager's "
            "cloudSecrets must list it and the device role must allow "
            "secretsmanager:GetSecretValue on it"
        )
    return f"GetSecretValue of {secret_id} failed: {kind}: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def write_file(dir_fd: int, name: str, data: bytes) -> None:
    """``data`` into ``name`` of the folder ``dir_fd``: a new temporary file (never a link),
    :data:`FILE_MODE`, synced, renamed over ``name``; the folder synced after.

    Raises:
        FetchError: the file cannot be written.
    """
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, FILE_MODE, dir_fd=dir_fd)
    except OSError as exc:
        raise FetchError(f"cannot write {name}: {exc.strerror or exc}") from None
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise FetchError(f"cannot write {name}: {exc.strerror or exc}") from None
    os.fsync(dir_fd)


def write_outputs(document: dict[str, Any], out_dir: str, outputs: Sequence[Output]) -> None:
    """Each output's value (a non-empty string without NUL) into its file under ``out_dir``.

    Every value is checked before the first file is written.

    Raises:
        FetchError: a missing or bad value, a folder that is missing or a link, a write error.
    """
    values = []
    for output in outputs:
        value = resolve(document, output.pointer)
        if not isinstance(value, str) or not value or "\0" in value:
            raise FetchError(
                f"the secret's value at {output.pointer} is not a non-empty string: deploy the "
                "bundle again"
            )
        values.append(value.encode("utf-8"))
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        root = os.open(out_dir, flags)
    except OSError as exc:
        raise FetchError(f"cannot open {out_dir}: {exc.strerror or exc}") from None
    try:
        for output, data in zip(outputs, values, strict=True):
            where = f"{out_dir}/{output.folder}" if output.folder else out_dir
            try:
                folder = os.open(output.folder, flags, dir_fd=root) if output.folder else root
            except OSError as exc:
                raise FetchError(f"cannot open {where}: {exc.strerror or exc}") from None
            try:
                write_file(folder, output.name, data)
            finally:
                if folder != root:
                    os.close(folder)
            log.debug("wrote %s/%s", where, output.name)
    finally:
        os.close(root)


def main(argv: Sequence[str] | None = None, *, connect: Callable[[], Any] = _connect_sdk) -> int:
    """The command line (see the module docstring); 0 on success, 1 with one line on stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m panorama_cli.fleet.greengrass_fetch",
        description="Write the app's credentials from its Greengrass secret into files.",
    )
    parser.add_argument("--secret-id", required=True, help="the secret's ARN")
    parser.add_argument("--out", required=True, help="the folder the PATHs are under")
    parser.add_argument("outputs", nargs="+", metavar="PATH=POINTER")
    args = parser.parse_args(argv)
    try:
        outputs = [Output.parse(text) for text in args.outputs]
        if not args.secret_id:
            raise FetchError("--secret-id is empty: deploy with panorama-cli deploy")
        document = fetch(args.secret_id, connect=connect)
        write_outputs(document, args.out, outputs)
    except FetchError as exc:
        print(f"panorama-cli greengrass secrets: {exc}", file=sys.stderr)
        return 1
    print(f"panorama-cli greengrass secrets: {len(outputs)} file(s) written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # the one line main prints is the whole report: the SDK's own warnings would repeat it
    logging.getLogger().addHandler(logging.NullHandler())
    sys.exit(main())
