"""``panorama-cli serve`` as a real subprocess for tests: :class:`ServeProcess` (its own port,
output captured to a file, SIGTERM to stop, requests with its login token) and small HTTP
helpers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.cameras import free_port
from tests.support.polling import until
from tests.support.signals import popen_interruptible


def http_get(url: str, timeout: float = 5.0, token: str | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET (with ``Authorization: Bearer token`` when given); an HTTP
    error status is returned, not raised."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class ServeProcess:
    """``panorama-cli serve --camera front_camera=CAMERA`` in ``root`` with ``state`` as its
    state folder; stdout and stderr go to ``output_path`` (default: next to ``state``)."""

    def __init__(
        self, root: Path, state: Path, camera: str, *extra: str, output_path: Path | None = None
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.state = state
        self.output_path = output_path or state.parent / f"{state.name}-output.txt"
        argv = [sys.executable, "-m", "panorama_cli", "serve", "--camera",
                f"front_camera={camera}", "--listen", f"127.0.0.1:{self.port}",
                "--rtsp-port", "0", "--state-dir", str(state), *extra]  # fmt: skip
        self._out = open(self.output_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = popen_interruptible(argv, cwd=root, stdout=self._out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def serve_log(self) -> str:
        path = self.state / "logs" / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def token(self) -> str | None:
        """The login token serve made in its state folder (None before it did)."""
        path = self.state / "auth" / "token"
        return path.read_text().strip() if path.exists() else None

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """(status, body) of GET ``path`` with the login token."""
        return http_get(f"{self.base}{path}", timeout, self.token)

    def status(self) -> dict[str, Any]:
        return json.loads(self.get("/api/status")[1])

    def node(self, name: str = "code_node") -> dict[str, Any]:
        return self.status()["nodes"].get(name, {})

    def wait_listening(self, timeout: float = 60.0) -> None:
        def up() -> bool:
            assert self.proc.poll() is None, self.output()
            try:
                return http_get(f"{self.base}/healthz", 2)[0] == 200
            except OSError:
                return False

        until(up, timeout, "serve to listen")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM; the exit status (killed after ``timeout`` seconds)."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        finally:
            self._out.close()
