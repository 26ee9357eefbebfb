"""Run a business-logic node's descriptor entry as on the device, and stop it for sure.

The entry (``python3 /panorama/app.py``, ``bash /panorama/run.sh``) runs as a real process in
its own session and process group, inside the sandbox of :mod:`.sandbox` (bubblewrap, else
``unshare`` as root; no capabilities, its own pid namespace): the appliance's filesystem, where
/panorama is the package's ``src/`` read-only (``--writable-app``: writable through a throwaway
overlay or copy), /opt/aws/panorama/logs and /storage are the run folder's ``logs/`` and
``storage/``, the working directory is ``/``, the environment is an allow-list
(:func:`app_environment`) and ``python3``/``python3.X`` run the chosen interpreter (shims first
on PATH).

Stopping is a ladder on the app's process group: SIGINT (KeyboardInterrupt), then SIGTERM,
then SIGKILL after ``grace_s`` each; SIGKILL to the sandbox takes every child with it (with a
pid namespace, even children that left the process group).

The app's output (stdout and stderr, one pipe) is drained by a thread into a
:class:`~.console_log.ConsoleLog`: console.log (capped; a full disk drops lines, never stops
the draining) and the terminal (without the traceback of the runner's own SIGINT).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.apps import appliance, sandbox
from panorama_cli.localrun.apps.appliance import APP_ROOT, SOCKET_ENV
from panorama_cli.localrun.apps.console_log import ConsoleLog

log = logging.getLogger(__name__)

#: The longest piece of an app's output line read at once (bytes).
LINE_BYTES = 1 << 16


@dataclass
class AppSpec:
    """How to start one business-logic node.

    Attributes:
        node: the node's name in the application graph.
        interpreter: descriptor ``entry.path`` (``python3``, ``python3.8``, ``bash``, or a path).
        entry: descriptor ``entry.name`` (``/panorama/app.py``).
        src: the package's src/ folder (becomes /panorama).
        logs / storage: run-folder folders (become /opt/aws/panorama/logs and /storage).
        bin_dir: a folder for the python3/python3.X shims (created).
        python: the interpreter python3 resolves to.
        env: extra environment (socket, node name, AppGraph_Uid).
        aws_profile: pass AWS credentials through with this profile (None: none at all).
        writable_app: ``--writable-app``: /panorama writable (a throwaway overlay or copy)
            and working directory /panorama, which the appliance does not do.
        console_rotate: (bytes per file, older files kept) to rotate console.log (serve);
            None: one file capped at :data:`~.console_log.MAX_BYTES` (run).
    """

    node: str
    interpreter: str
    entry: str
    src: Path
    logs: Path
    storage: Path
    bin_dir: Path
    python: str = sys.executable
    env: Mapping[str, str] = field(default_factory=dict)
    aws_profile: str | None = None
    writable_app: bool = False
    console_rotate: tuple[int, int] | None = None


def python_version(python: str) -> str:
    """``3.X`` of interpreter ``python``.

    Raises:
        UserError: it cannot be run.
    """
    if Path(python).resolve() == Path(sys.executable).resolve():
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(
            f"--python {python}: cannot run it ({exc})", hint="pass a Python 3 interpreter"
        ) from exc
    return out.stdout.strip()


#: python3.X names that resolve to the chosen interpreter (whatever X the app asks for).
SHIM_MINORS = range(6, 16)


def write_shims(bin_dir: Path, python: str) -> None:
    """``python``, ``python3`` and every ``python3.X`` in ``bin_dir``, each exec'ing ``python``.

    Shell shims rather than symlinks: a virtual environment's python must be started by its
    own path to find its site-packages.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    names = {"python", "python3", f"python{python_version(python)}"}
    names.update(f"python3.{minor}" for minor in SHIM_MINORS)
    for name in sorted(names):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {_quote(python)} "$@"\n')
        shim.chmod(0o755)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def app_environment(spec: AppSpec) -> dict[str, str]:
    """The app's whole environment: an allow-list (:func:`.appliance.app_environment`),
    nothing of the runner's own (no tokens, no AWS credentials unless ``aws_profile``)."""
    return appliance.app_environment(spec.env, shims=True, aws_profile=spec.aws_profile)


def _entry_argv(spec: AppSpec) -> list[str]:
    program = spec.interpreter
    if Path(program).name.startswith("python"):
        program = Path(program).name  # python3 / python3.8 / /usr/bin/python3 -> the shim
    return [program, spec.entry]


@contextmanager
def apps_get_default_sigint() -> Iterator[None]:
    """Within the block the app processes started start with SIGINT at its default, as on the
    appliance, even when this runner was started with SIGINT ignored (a background job of a
    shell without job control, as POSIX has it): the stop ladder's SIGINT then raises
    KeyboardInterrupt in the app. The runner itself keeps ignoring SIGINT: a no-op handler
    replaces SIG_IGN (exec resets handled signals to their default, never ignored ones).
    Only the main thread can change handlers; elsewhere the block changes nothing."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    ):
        yield
        return
    signal.signal(signal.SIGINT, _ignore)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _ignore(signum: int, frame: Any) -> None:
    log.debug("run: SIGINT ignored (it was ignored when the runner started)")


class AppProcess:
    """One running business-logic node (see the module docstring).

    Args:
        spec: what to run.
        console_log: file that receives the app's console output (stdout and stderr).
        on_output: called with (node, line) for every line the app prints.
    """

    def __init__(
        self,
        spec: AppSpec,
        console_log: Path,
        on_output: Callable[[str, str], None] | None = None,
    ):
        self.spec = spec
        self.console_log = console_log
        self._on_output = on_output
        self._proc: subprocess.Popen[bytes] | None = None
        self._group: int | None = None
        self._reader: threading.Thread | None = None
        self.started_at: float | None = None
        self.stop_requested = False
        #: The signal of the stop ladder that ended the app ("SIGINT", ...; None: not stopped).
        self.stopped_by: str | None = None
        self._console = ConsoleLog(
            console_log,
            spec.node,
            on_output,
            stopping=lambda: self.stop_requested,
            rotate=spec.console_rotate,
        )
        self._new_root: Path | None = None
        self._lifeline: int | None = None  # the unshare fallback's: see _unshare_root.py
        self._src_copy: Path | None = None
        self._stop_lock = threading.Lock()

    def start(self) -> None:
        """Start the entry in its sandbox.

        Raises:
            UserError: the sandbox cannot be made or the program cannot start.
        """
        spec = self.spec
        for folder in (spec.logs, spec.storage):
            folder.mkdir(parents=True, exist_ok=True)
        write_shims(spec.bin_dir, spec.python)
        how = sandbox.mode()
        if not how:
            raise sandbox.unavailable()
        src, writable = spec.src, ""
        if spec.writable_app:  # --writable-app: /panorama writable, never reaching src/
            writable = "overlay" if sandbox.bwrap_overlay() else "copy"
        if writable == "copy":  # the app's writes go to a copy in the run folder (kill())
            self._src_copy = spec.bin_dir.parent / f".panorama-{spec.node}"
            src = sandbox.copy_src(spec.src, self._src_copy)
        socket_path = Path(spec.env[SOCKET_ENV])
        ops = sandbox.layout(
            src,
            spec.logs,
            spec.storage,
            binds=sandbox.tool_binds(spec.bin_dir, socket_path, aws=spec.aws_profile is not None),
            keep=sandbox.interpreter_paths(spec.python),
            writable=writable,
        )
        chdir = APP_ROOT if spec.writable_app else "/"
        if how == "unshare":
            self._new_root = spec.bin_dir.parent / f".root-{spec.node}"
            life, self._lifeline = os.pipe()  # EOF (this runner gone): the helper ends it all
            try:
                argv = sandbox.unshare_argv(ops, _entry_argv(spec), self._new_root, chdir, life)
                self._start(argv, (life,))
            finally:
                os.close(life)
            assert self._proc is not None
            self._group = self._proc.pid  # unshare's process group: the helper and the entry
            return
        read_fd, write_fd = os.pipe()
        try:
            argv = sandbox.bwrap_argv(ops, _entry_argv(spec), write_fd, chdir)
            self._start(argv, (write_fd,))
        finally:
            os.close(write_fd)
        self._group = self._read_group(read_fd)

    def _start(self, argv: list[str], fds: tuple[int, ...]) -> None:
        log.debug("node %s: %s", self.spec.node, " ".join(argv))
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=app_environment(self.spec),
                start_new_session=True,
                pass_fds=fds,
            )
        except OSError as exc:
            raise UserError(f"node {self.spec.node}: cannot start {argv[0]}: {exc}") from exc
        self.started_at = time.monotonic()
        self._reader = threading.Thread(
            target=self._pump, name=f"app-{self.spec.node}", daemon=True
        )
        self._reader.start()

    def _read_group(self, read_fd: int) -> int | None:
        """The sandbox child's pid (a session leader: its pid is the app's process group)."""
        with os.fdopen(read_fd, "rb") as stream:
            data = stream.read()
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            return None  # bwrap failed before starting the child; poll() shows it

    def _pump(self) -> None:
        """Drain the app's output into its :class:`ConsoleLog` until the pipe closes (lines
        longer than :data:`LINE_BYTES` come in pieces; nothing here stops reading)."""
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        try:
            while True:
                raw = stream.readline(LINE_BYTES)
                if not raw:
                    break
                self._console.feed(raw)
        finally:
            self._console.close()

    @property
    def notes(self) -> list[str]:
        """What was lost of the app's console output (cap reached, full disk), one line each."""
        return list(self._console.notes)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        """The exit status (negative: killed by that signal; 128+N from bwrap), or None."""
        return None if self._proc is None else self._proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _signal_group(self, sig: int) -> None:
        for group in (self._group,):
            if group is None:
                continue
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, grace_s: float = 2.0) -> int | None:
        """Stop the app: SIGINT, SIGTERM, SIGKILL to its process group, ``grace_s`` apart.

        Returns:
            Its exit status.
        """
        self.stop_requested = True
        if self._proc is None:
            self.discard_src_copy()
            return None
        with self._stop_lock:  # one ladder at a time: a second stop waits for the first
            self._ladder(grace_s)
        return self._proc.returncode

    def _ladder(self, grace_s: float) -> None:
        assert self._proc is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            if self._proc.poll() is not None:
                break
            log.debug("node %s: %s to process group %s", self.spec.node, sig.name, self._group)
            self._signal_group(sig)
            if self.wait(grace_s) is not None:
                self.stopped_by = sig.name
                break
        else:
            if self._proc.poll() is None:
                self.stopped_by = "SIGKILL"
        self.kill()

    def kill(self) -> None:
        """SIGKILL the app's group and the sandbox (its pid namespace goes with it)."""
        if self._proc is None:
            self.discard_src_copy()
            return
        self._signal_group(signal.SIGKILL)
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.wait(10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if self._new_root is not None:  # the unshare fallback's (now empty) mount point
            try:
                self._new_root.rmdir()
            except OSError:
                pass
        self.discard_src_copy()

    def discard_src_copy(self) -> None:
        """Remove the copy of src/ the app wrote in (when there was one)."""
        if self._src_copy is not None:
            shutil.rmtree(self._src_copy, ignore_errors=True)
