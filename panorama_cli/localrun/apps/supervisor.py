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
from panorama_cli.localrun.apps.limits import LimitWatch, NodeLimits

log = logging.getLogger(__name__)

#: The longest piece of an app's output line read at once (bytes).
LINE_BYTES = 1 << 16
#: Enters a node's cgroup and rlimits, then execs the sandbox (see :mod:`.limits`).
_ENTER = Path(__file__).with_name("_enter.py")


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
        aws_endpoint_url: ``--aws-endpoint-url``: the app's ``AWS_ENDPOINT_URL`` (a local
            server such as moto's), with test credentials unless ``aws_profile``; None: none.
        writable_app: ``--writable-app``: /panorama writable (a throwaway overlay or copy)
            and working directory /panorama, which the appliance does not do.
        console_rotate: (bytes per file, older files kept) to rotate console.log (serve);
            None: one file capped at :data:`~.console_log.MAX_BYTES` (run).
        limits: the node's memory, processes and disk (:mod:`.limits`); None: none.
        uid: (a root runner) the node's own unprivileged uid (:mod:`.app_user`), which gets
            its logs and storage; None: the runner's user.
        volume: the image file of the node's own file system (:mod:`.volumes`: logs and
            storage bounded by ``limits.storage``, where one can be made); None: none.
        keep_volume: the image lasts after the node (serve); else its files are copied into
            ``logs``/``storage`` and it is removed at the node's end (run).
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
    aws_endpoint_url: str | None = None
    writable_app: bool = False
    console_rotate: tuple[int, int] | None = None
    limits: NodeLimits | None = None
    uid: int | None = None
    volume: Path | None = None
    keep_volume: bool = False


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
    return appliance.app_environment(
        spec.env, shims=True, aws_profile=spec.aws_profile, endpoint_url=spec.aws_endpoint_url
    )


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
        self._aws_copy: Path | None = None
        self._stop_lock = threading.Lock()
        self._cgroup: Any = None
        self._watch: LimitWatch | None = None
        self._volume: Any = None  # its own file system (.volumes), or None
        self._exit_seen = False
        #: The limit that ended the node (``"memory limit 4 GiB"``), or None.
        self.limit_hit: str | None = None

    def start(self) -> None:
        """Start the entry in its sandbox.

        Raises:
            UserError: the sandbox cannot be made or the program cannot start.
        """
        spec = self.spec
        for folder in (spec.logs, spec.storage):
            folder.mkdir(parents=True, exist_ok=True)
        if spec.volume is not None and spec.limits is not None:
            from panorama_cli.localrun.apps import volumes

            self._volume = volumes.attach(
                spec.node,
                spec.volume,
                spec.limits.storage,
                spec.logs,
                spec.storage,
                spec.uid,
                spec.keep_volume,
            )
        if spec.uid is not None:
            self._hand_over()
        write_shims(spec.bin_dir, spec.python)
        how = sandbox.mode()
        if not how:
            raise sandbox.unavailable()
        src, writable = spec.src, ""
        if spec.writable_app:  # --writable-app: /panorama writable, never reaching src/
            # an overlay's upper folder is root's: the node's own uid writes in a copy
            overlay = sandbox.bwrap_overlay() and spec.uid is None
            writable = "overlay" if overlay else "copy"
        if writable == "copy":  # the app's writes go to a copy in the run folder (kill())
            self._src_copy = spec.bin_dir.parent / f".panorama-{spec.node}"
            src = sandbox.copy_src(spec.src, self._src_copy)
            if spec.uid is not None:
                from panorama_cli.localrun.apps.app_user import hand_over

                hand_over(src, spec.uid)
        socket_path = Path(spec.env[SOCKET_ENV])
        ops = sandbox.layout(
            src,
            spec.logs,
            spec.storage,
            binds=sandbox.tool_binds(
                spec.bin_dir,
                socket_path,
                aws=spec.aws_profile is not None,
                aws_files=self._aws_copies(),
            ),
            keep=sandbox.interpreter_paths(spec.python),
            writable=writable,
            tmp_bytes=spec.limits.memory if spec.limits else 0,
        )
        chdir = APP_ROOT if spec.writable_app else "/"
        if how == "unshare":
            self._new_root = spec.bin_dir.parent / f".root-{spec.node}"
            life, self._lifeline = os.pipe()  # EOF (this runner gone): the helper ends it all
            try:
                argv = sandbox.unshare_argv(
                    ops, _entry_argv(spec), self._new_root, chdir, life, spec.uid
                )
                self._start(self._limited(argv), (life,))
            finally:
                os.close(life)
            assert self._proc is not None
            self._group = self._proc.pid  # unshare's process group: the helper and the entry
        else:
            read_fd, write_fd = os.pipe()
            try:
                argv = sandbox.bwrap_argv(ops, _entry_argv(spec), write_fd, chdir, spec.uid)
                self._start(self._limited(argv), (write_fd,))
            finally:
                os.close(write_fd)
            self._group = self._read_group(read_fd)
        if spec.limits is not None:
            self._watch = LimitWatch(
                spec.node,
                spec.limits,
                () if self._volume is not None else (spec.logs, spec.storage),
                self._cgroup,
                self._limit_kill,
                volume=self._volume,
            )
            self._watch.start()

    def _hand_over(self) -> None:
        """The node's uid gets its logs and storage; its control socket accepts it."""
        from panorama_cli.localrun.apps.app_user import hand_over

        spec = self.spec
        assert spec.uid is not None
        for folder in (spec.logs, spec.storage):
            try:
                hand_over(folder, spec.uid)
            except OSError as exc:
                raise UserError(f"node {spec.node}: cannot give it {folder}: {exc}") from exc
        socket_path = Path(spec.env[SOCKET_ENV])
        try:  # who may connect is checked on hello (each node's own credential)
            mode = socket_path.lstat().st_mode
            if mode & 0o006 != 0o006:
                os.chmod(socket_path, (mode & 0o777) | 0o666, follow_symlinks=False)
        except (OSError, NotImplementedError) as exc:
            log.debug("node %s: control socket %s: %s", spec.node, socket_path, exc)

    def _aws_copies(self) -> dict[str, Path] | None:
        """With ``--aws-profile`` and a node uid: the runner's AWS files copied for that uid
        alone (0400, in the run folder; they are often 0600 root's); else None (as they are)."""
        spec = self.spec
        if spec.aws_profile is None or spec.uid is None:
            return None
        folder = spec.bin_dir.parent / f".aws-{spec.node}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o700, parents=True)
        copies: dict[str, Path] = {}
        for name, path in appliance.aws_files().items():
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UserError(f"--aws-profile: cannot read {path}: {exc}") from exc
            copy = folder / name
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
            os.chown(copy, spec.uid, spec.uid)
            copies[name] = copy
        os.chown(folder, spec.uid, spec.uid)
        self._aws_copy = folder
        return copies

    def _limited(self, argv: list[str]) -> list[str]:
        """``argv`` started through ``_enter.py``: into the node's cgroup (made here) and
        rlimits (:mod:`.limits`); ``argv`` itself without limits."""
        limits = self.spec.limits
        if limits is None:
            return argv
        from panorama_cli.localrun.apps import cgroups

        self._cgroup, why = cgroups.create(self.spec.node, limits)
        rlimits = {"FSIZE": limits.storage}
        if self._cgroup is None:
            log.debug("node %s: no cgroup (%s): rlimits", self.spec.node, why)
            rlimits["DATA"] = limits.memory
            if self.spec.uid is not None:  # the node's own uid: its processes alone
                rlimits["NPROC"] = limits.pids
        spec = {
            "cgroups": self._cgroup.procs_files if self._cgroup is not None else [],
            "rlimits": rlimits,
            "argv": [shutil.which(argv[0]) or argv[0], *argv[1:]],
        }
        return [sys.executable, "-I", "-S", str(_ENTER), json.dumps(spec)]

    def _limit_kill(self) -> None:
        """A limit was passed (the watch thread): SIGKILL the sandbox, as the kernel would."""
        self._signal_group(signal.SIGKILL)
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

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
                umask=0o022,  # the folders the sandbox makes: readable by the node's uid
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
        """What was lost of the app's console output (cap reached, full disk) and the limit
        that stopped it, one line each."""
        return list(self._console.notes) + (list(self._watch.notes) if self._watch else [])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        """The exit status (negative: killed by that signal; 128+N from bwrap), or None.
        At the first exit seen, :attr:`limit_hit` says whether a limit ended it."""
        code = None if self._proc is None else self._proc.poll()
        if code is not None and not self._exit_seen:
            self._exit_seen = True
            if self._watch is not None and not self.stop_requested:
                self.limit_hit = self._watch.exited(128 - code if code < 0 else code)
        return code

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
        self.poll()  # a limit's kill is read before its cgroup goes
        if self._watch is not None:
            self._watch.close()
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._volume is not None and not self._volume.keep:
            self._volume.close()  # run: its files copied out, the image gone
            self._volume = None
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
        """Remove the copy of src/ the app wrote in and of the AWS files (when made)."""
        if self._src_copy is not None:
            shutil.rmtree(self._src_copy, ignore_errors=True)
        if self._aws_copy is not None:
            shutil.rmtree(self._aws_copy, ignore_errors=True)
