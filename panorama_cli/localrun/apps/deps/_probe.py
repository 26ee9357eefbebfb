"""Run by the app's interpreter (Python >= 3.7: no newer syntax here): which distributions it
has and whether their modules can be imported, without importing them.

stdin: JSON {"dists": {name: [fallback module, ...]}}. stdout: JSON {"executable",
"version", "markers" (PEP 508 environment), "site" (site-packages folders on sys.path),
"dists": {name: {"found", "version", "modules", "missing"}}}. A distribution's modules come
from its metadata (top_level.txt, else the top-level names in RECORD); when it has none (not
installed, or Python 3.7 without importlib_metadata) from the fallback names.
"""

import json
import os
import platform
import sys
from importlib.util import find_spec

try:
    from importlib import metadata
except ImportError:  # Python 3.7
    try:
        import importlib_metadata as metadata
    except ImportError:
        metadata = None


def markers():
    info = sys.implementation.version
    version = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        version += info.releaselevel[0] + str(info.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def top_level(dist):
    text = dist.read_text("top_level.txt")
    if text:
        return [n.strip().replace("/", ".") for n in text.split() if n.strip()]
    names = []
    for path in dist.files or ():
        parts = path.parts
        if (
            not parts
            or parts[0] in ("..", "__pycache__")
            or parts[0].endswith((".dist-info", ".egg-info", ".data"))
        ):
            continue
        first = parts[0]
        if len(parts) == 1:
            if first.endswith(".py"):
                first = first[:-3]
            elif first.endswith((".so", ".pyd")):
                first = first.split(".")[0]
            else:
                continue  # .pth files, scripts
        if first.isidentifier() and first not in names:  # not numpy.libs, not scripts
            names.append(first)
    return names


def findable(module):
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def probe(name, fallback):
    found, version, modules = False, None, []
    if metadata is not None:
        try:
            dist = metadata.distribution(name)
        except Exception:  # PackageNotFoundError, or a broken metadata folder
            dist = None
        if dist is not None:
            found, version = True, dist.version
            try:
                modules = top_level(dist)
            except Exception:
                modules = []
    if not modules:
        modules = list(fallback)
    # importable when one of its modules is (a distribution may ship optional ones)
    missing = [] if not modules or any(findable(m) for m in modules) else modules
    return {"found": found, "version": version, "modules": modules, "missing": missing}


def main():
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    request = json.load(sys.stdin)
    site = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    result = {
        "executable": sys.executable,
        "version": platform.python_version(),
        "markers": markers(),
        "site": site,
        "dists": dict((n, probe(n, f)) for n, f in request["dists"].items()),
    }
    json.dump(result, sys.stdout)


main()
