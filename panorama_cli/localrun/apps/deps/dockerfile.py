"""What a node package's Dockerfile installs into its image's Python: ``pip install`` lines
(``pip``, ``pip3``, ``pip3.X``, ``python3 -m pip``; ``-r`` files resolved against the package
folder) and ``apt-get install python3-X`` packages.

The Dockerfile is read with dockerfile-parse (instructions, line numbers, continuations), a
RUN's shell words with :mod:`shlex` (``&&``, ``||``, ``;`` and ``|`` end a command), and every
requirement with :class:`packaging.requirements.Requirement`. pip's own command-line and
requirements-file grammar (``pip install --help``, "Requirements File Format" in pip's user
guide) decides which option takes a value. Only the final build stage counts (and the stages
it is ``FROM``). A RUN's ``$NAME`` / ``${NAME}`` (outside single quotes) become the value the
build gives them when the Dockerfile says it: an ``ARG`` default in scope (dockerfile-parse's
per-instruction context, a global default included) or an ``ENV`` (``ARG TORCH_WHL=...`` then
``pip install ${TORCH_WHL}``). Local paths, URLs, editables, variables without a known value
and constraints are skipped with a debug line: they name nothing to check.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packaging.requirements import Requirement

log = logging.getLogger(__name__)

#: pip options (general and ``install``) that take a value (pip 24-26 ``pip install --help``).
_VALUE_OPTIONS = frozenset(
    "-r --requirement -c --constraint -e --editable -t --target --platform --python-version "
    "--implementation --abi --root --prefix --src --upgrade-strategy -C --config-settings "
    "--global-option --install-option --no-binary --only-binary --progress-bar "
    "--root-user-action --report -i --index-url --extra-index-url -f --find-links --group "
    "--python --log --log-file --proxy --retries --timeout --exists-action --trusted-host "
    "--cert --client-cert --cache-dir --use-feature --use-deprecated --keyring-provider "
    "--resume-retries --hash".split()
)
#: python options before ``-m`` that take a value.
_PYTHON_VALUE_OPTIONS = frozenset({"-W", "-X", "-c", "--check-hash-based-pycs"})
_SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "(", ")"})
#: Debian python3-X packages that are tools or headers, not importable modules.
_APT_TOOLING = frozenset(
    {"dev", "pip", "venv", "distutils", "setuptools", "wheel", "all", "minimal", "full", "tk"}
)


@dataclass(frozen=True)
class Install:
    """One distribution a package's image installs.

    Attributes:
        requirement: the requirement (name, extras, specifier, marker).
        text: as written (``scipy>=1.5``).
        where: for messages: ``Dockerfile line 5`` or ``requirements.txt line 2``.
        apt: the Debian package it came from (``python3-numpy``), or None for pip.
    """

    requirement: Requirement
    text: str
    where: str
    apt: str | None = None


def collect(package_folder: Path) -> list[Install]:
    """Everything ``package_folder/Dockerfile`` installs (see the module docstring); [] when
    the package has no Dockerfile.

    Raises:
        UserError: the Dockerfile or a requirements file it names cannot be read.
    """
    from dockerfile_parse import DockerfileParser

    from panorama_cli.errors import UserError

    path = package_folder / "Dockerfile"
    if not path.is_file():
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read it: {exc}") from exc
    import io

    parser = DockerfileParser(fileobj=io.BytesIO(data))
    structure = [
        {**item, "vars": _known(context)}
        for item, context in zip(parser.structure, parser.context_structure, strict=False)
    ]
    found: list[Install] = []
    workdir = PurePosixPath("/")
    copies: list[tuple[list[str], PurePosixPath]] = []
    for item in _final_stage(structure):
        kind, value = item["instruction"], item["value"]
        if kind == "WORKDIR":
            workdir = workdir / value.strip()
        elif kind in ("COPY", "ADD"):
            words = _words(value)
            if words is not None and not any(w.startswith("--from") for w in words):
                words = [w for w in words if not w.startswith("--")]
                if len(words) >= 2:
                    copies.append((words[:-1], workdir / words[-1]))
        elif kind == "RUN":
            context = _Context(package_folder, workdir, list(copies), item)
            for command in _commands(substitute(value, item["vars"])):
                found += _from_command(command, context)
    return found


def _known(context: Any) -> dict[str, str]:
    """The variables with a value the build knows at an instruction (dockerfile-parse's
    context): ENV values, and ARG defaults that are not empty (an ARG without a default is
    whatever ``--build-arg`` says: unknown here)."""
    known = {k: str(v) for k, v in dict(getattr(context, "args", None) or {}).items() if v}
    known.update({k: str(v) for k, v in dict(getattr(context, "envs", None) or {}).items()})
    return known


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def substitute(text: str, variables: Mapping[str, str], depth: int = 4) -> str:
    """``text`` (a RUN's shell text) with each ``$NAME`` / ``${NAME}`` of ``variables``
    replaced by its value, as the shell would: not inside single quotes, not after a
    backslash. Other variables (``${NAME:-x}``, unknown names) stay as written. A value that
    holds known variables itself is expanded again, ``depth`` times at most."""
    if "$" not in text or not variables:
        return text
    out: list[str] = []
    quoted = double = False  # inside '...' / "..."
    index = 0
    while index < len(text):
        char = text[index]
        escaped = index > 0 and text[index - 1] == "\\" and not quoted
        if char == "'" and not double and not escaped:
            quoted = not quoted
        elif char == '"' and not quoted and not escaped:
            double = not double
        elif char == "$" and not quoted and not escaped:
            match = _VARIABLE.match(text, index)
            name = (match.group(1) or match.group(2)) if match else None
            if match and name in variables:
                value = variables[name]
                out.append(substitute(value, variables, depth - 1) if depth > 0 else value)
                index = match.end()
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _final_stage(structure: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The instructions of the last stage, after those of the stages it is FROM (by name)."""
    stages: list[tuple[str, str, list[dict[str, Any]]]] = []  # (name, base, instructions)
    for item in structure:
        if item["instruction"] == "FROM":
            words = str(item["value"]).split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
            stages.append((name, words[0].lower() if words else "", []))
        elif stages:
            stages[-1][2].append({k: v if k == "vars" else str(v) for k, v in item.items()})
    if not stages:
        return []
    named = {name: (base, items) for name, base, items in stages if name}
    _, base, items = stages[-1]
    chain = [items]
    while base in named and len(chain) <= len(stages):
        base, earlier = named[base]
        chain.insert(0, earlier)
    return [item for stage in chain for item in stage]


def _words(value: str) -> list[str] | None:
    """A COPY/RUN value's words: exec (JSON) form or shell words; None when unreadable."""
    text = value.strip()
    if text.startswith("["):
        try:
            words = json.loads(text)
        except ValueError:
            words = None
        if isinstance(words, list) and all(isinstance(w, str) for w in words):
            return words
    try:
        return shlex.split(text)
    except ValueError:
        return None


def _commands(value: str) -> list[list[str]]:
    """The simple commands of a RUN value (operators split them; redirections dropped)."""
    text = value.strip()
    while text.startswith("--"):  # BuildKit RUN flags: --mount=..., --network=...
        text = text.split(None, 1)[1] if " " in text else ""
    if text.startswith("["):
        words = _words(text)
        return [words] if words else []
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    redirect = False
    try:
        for token in lexer:
            if token in _SHELL_OPERATORS:
                commands.append([])
            elif set(token) <= set("<>&|;()") and token:  # > >> 2>&1 <
                redirect = True
                if commands[-1] and commands[-1][-1].isdigit():
                    commands[-1].pop()
            elif redirect:
                redirect = False
            else:
                commands[-1].append(token)
    except ValueError as exc:  # an unclosed quote
        log.debug("RUN %r: cannot split it into words (%s)", text, exc)
        return []
    return [c for c in commands if c]


@dataclass
class _Context:
    """Where a RUN is: for messages (line numbers) and to find its ``-r`` files."""

    package: Path
    workdir: PurePosixPath
    copies: list[tuple[list[str], PurePosixPath]]
    item: dict[str, str]

    def line_of(self, word: str) -> int:
        """The Dockerfile line (1-based) of the RUN's first physical line holding ``word``."""
        start = int(self.item["startline"]) + 1
        for offset, line in enumerate(self.item["content"].splitlines()):
            if word in line:
                return start + offset
        return start

    def host_file(self, image_path: str) -> Path | None:
        """The file of the package folder that ``image_path`` (in the image) was copied from
        (COPY/ADD, latest first; else the path in the package folder); None when not found or
        outside the package folder."""
        wanted = self.workdir / image_path
        candidates: list[Path] = []
        for sources, dest in reversed(self.copies):
            for source in sources:
                host = self.package / source
                if host.is_dir():
                    try:
                        candidates.append(host / wanted.relative_to(dest))
                    except ValueError:
                        pass
                elif wanted in (dest, dest / PurePosixPath(source).name):
                    candidates.append(host)
        if not PurePosixPath(image_path).is_absolute():
            candidates.append(self.package / image_path)
        candidates.append(self.package / wanted.name)
        root = self.package.resolve()
        for candidate in candidates:
            if candidate.is_file() and candidate.resolve().is_relative_to(root):
                return candidate
        return None


def _from_command(words: list[str], context: _Context) -> list[Install]:
    while words and (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]) or words[0] in (
        "sudo", "env", "exec", "command", "nice", "time"
    )):  # fmt: skip
        words = words[1:]
    if not words:
        return []
    program = PurePosixPath(words[0]).name
    if program in ("apt-get", "apt", "aptitude"):
        return _from_apt(words[1:], context)
    if program in ("sh", "bash", "dash") and "-c" in words[1:-1]:  # bash -c "pip install x"
        script = words[words.index("-c", 1) + 1]
        return [i for command in _commands(script) for i in _from_command(command, context)]
    args = _pip_install_args(program, words[1:])
    return [] if args is None else _from_pip(args, context)


def _pip_install_args(program: str, args: list[str]) -> list[str] | None:
    """The words after ``install`` of a pip command, or None when it is not ``pip install``."""
    if re.fullmatch(r"python(3(\.\d+)?)?", program):
        rest = list(args)
        while rest and rest[0] != "-m" and not rest[0].startswith("-m"):
            if not rest[0].startswith("-"):
                return None  # python3 script.py
            option = rest.pop(0)
            if option in _PYTHON_VALUE_OPTIONS and rest:
                rest.pop(0)
        if not rest:
            return None
        module = rest.pop(0)[2:] or (rest.pop(0) if rest else "")
        if module not in ("pip", "pip3"):
            return None
        args = rest
    elif not re.fullmatch(r"pip(3(\.\d+)?)?", program):
        return None
    rest = list(args)
    while rest and rest[0].startswith("-"):  # general options before the subcommand
        option = rest.pop(0)
        if option in _VALUE_OPTIONS and rest:
            rest.pop(0)
    if not rest or rest[0] != "install":
        return None
    return rest[1:]


def _from_pip(args: list[str], context: _Context, *, where: str | None = None) -> list[Install]:
    """The requirements of ``pip install ARGS`` (and of its ``-r`` files)."""
    found: list[Install] = []
    rest = list(args)
    while rest:
        word = rest.pop(0)
        if word.startswith("-") and word != "-":
            option, value = _option(word, rest)
            if option in ("-r", "--requirement") and value is not None:
                found += _from_requirements_file(value, context, where)
            elif option in ("-e", "--editable"):
                log.debug(
                    "%s: pip install -e %s: an editable install, not checked",
                    _at(context, word),
                    value,
                )
            continue
        found += _requirement(word, where or f"Dockerfile line {context.line_of(word)}")
    return found


def _option(word: str, rest: list[str]) -> tuple[str, str | None]:
    """(option, its value or None) for ``word``, taking the value from ``rest`` if needed."""
    if word.startswith("--"):
        name, sep, value = word.partition("=")
        if sep:
            return name, value
        return (name, rest.pop(0) if rest else None) if name in _VALUE_OPTIONS else (name, None)
    short = word[:2]
    if short in _VALUE_OPTIONS:
        return short, word[2:] or (rest.pop(0) if rest else None)
    return short, None


def _at(context: _Context, word: str) -> str:
    return f"Dockerfile line {context.line_of(word)}"


def _requirement(text: str, where: str, apt: str | None = None) -> list[Install]:
    """``text`` as an Install, or [] (with a debug line) when it names no distribution."""
    from packaging.requirements import InvalidRequirement, Requirement

    text = " ".join(text.split())
    if "$" in text:
        log.debug("%s: %r holds a variable, not checked", where, text)
        return []
    wheel = _wheel_requirement(text, where)
    if wheel is not None:
        return [Install(wheel, text, where, apt)]
    local = "/" in text or text.startswith(".") or text.endswith((".whl", ".zip", ".tar.gz"))
    try:
        if local and "@" not in text:
            raise InvalidRequirement(text)
        requirement = Requirement(text)
    except InvalidRequirement:
        log.debug("%s: %r is a local path or URL, not a requirement: not checked", where, text)
        return []
    if requirement.url:
        log.debug("%s: %r installs from a URL: checked by name only", where, text)
    return [Install(requirement, text, where, apt)]


def _wheel_requirement(text: str, where: str) -> Requirement | None:
    """A wheel named by URL (``https://.../torch-1.10.0-cp37-cp37m-linux_aarch64.whl``) as
    the requirement it installs, ``torch @ URL``; None when ``text`` is no wheel URL (PEP 427
    file name). A wheel file in the image is a local path (not checked)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    if not re.match(r"https?://[^\s@]+\.whl$", text):
        return None
    try:
        name, version, _build, _tags = parse_wheel_filename(text.rsplit("/", 1)[-1])
        requirement = Requirement(f"{name} @ {text}")
    except (InvalidWheelFilename, InvalidRequirement) as exc:
        log.debug("%s: %r: not a wheel file name (%s), not checked", where, text, exc)
        return None
    log.debug("%s: %r installs %s %s", where, text, name, version)
    return requirement


def _from_requirements_file(
    image_path: str, context: _Context, parent: str | None
) -> list[Install]:
    """The requirements of a ``-r`` file (its own ``-r`` lines too), found in the package."""
    host = context.host_file(image_path)
    if host is None:
        log.debug(
            "%s: -r %s is not in the package folder, not checked",
            parent or _at(context, image_path),
            image_path,
        )
        return []
    return _read_requirements(host, context, depth=0)


def _read_requirements(host: Path, context: _Context, depth: int) -> list[Install]:
    """pip's requirements-file format: ``#`` comments, ``\\`` continuations, option lines
    (``-r`` nested, relative to the file), a requirement with per-line options (``--hash``)."""
    from panorama_cli.errors import UserError

    try:
        lines = host.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise UserError(f"{host}: cannot read it: {exc}") from exc
    name = (
        host.relative_to(context.package).as_posix()
        if host.is_relative_to(context.package)
        else host.name
    )
    found: list[Install] = []
    logical, start = "", 0
    for number, raw in enumerate(lines, 1):
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if not logical:
            start = number
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical, text = "", (logical + line).strip()
        if not text:
            continue
        where = f"{name} line {start}"
        if text.startswith("-"):
            words = _words(text) or []
            option, value = _option(words[0], words[1:]) if words else ("", None)
            if option in ("-r", "--requirement") and value and depth < 10:
                nested = host.parent / value
                if nested.is_file() and nested.resolve().is_relative_to(context.package.resolve()):
                    found += _read_requirements(nested, context, depth + 1)
                else:
                    log.debug(
                        "%s: -r %s not found in the package folder, not checked", where, value
                    )
            continue
        requirement = re.split(r"\s+-", text, maxsplit=1)[0].strip()  # pip: options after
        found += _requirement(requirement, where)
    return found


def _from_apt(args: list[str], context: _Context) -> list[Install]:
    """``apt-get install ... python3-X ...``: distribution X for each python3-X package."""
    if "install" not in args:
        return []
    found: list[Install] = []
    for word in args[args.index("install") + 1 :]:
        if word.startswith("-"):
            continue
        package = word.split("=", 1)[0]
        match = re.fullmatch(r"python3-([a-z0-9][a-z0-9.+-]*)", package)
        if not match:
            continue
        name = match.group(1)
        if name in _APT_TOOLING or name.endswith(("-dev", "-dbg", "-doc")):
            continue
        found += _requirement(name, f"Dockerfile line {context.line_of(word)}", apt=package)
    return found
