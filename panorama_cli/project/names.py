"""Name rules for everything a user names: packages, versions, assets, nodes, ports, accounts.

The patterns come from the Panorama service model (panorama-2019-07-24: NodePackageName,
NodePackageVersion, NodeAssetName, NodeName, PortName, PackageOwnerAccount) and the manifest
schema (ver_2021-01-01). Every user-supplied name is checked here *before* it is used in a path,
so that a name can never carry a path separator or a shell character.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NameRule:
    """A named pattern with a length limit (characters)."""

    kind: str
    pattern: str
    max_length: int
    example: str

    def matches(self, value: object) -> bool:
        """True when ``value`` is a string of 1..max_length characters matching the pattern."""
        return (
            isinstance(value, str)
            and 0 < len(value) <= self.max_length
            and re.fullmatch(self.pattern, value) is not None
        )

    def describe(self) -> str:
        """Human-readable rule, e.g. ``letters, digits, '-' and '_' (at most 128)``."""
        return (
            f"must match {self.pattern} (at most {self.max_length} characters, e.g. {self.example})"
        )


PACKAGE_NAME = NameRule("package name", r"[a-zA-Z0-9\-_]+", 128, "people_counter")
PACKAGE_VERSION = NameRule("package version", r"[0-9]+\.[0-9]+", 255, "1.0")
ASSET_NAME = NameRule("asset name", r"[a-zA-Z0-9\-_]+", 255, "people_counter_binary")
NODE_NAME = NameRule("node name", r"[a-zA-Z0-9\-_]+", 128, "front_door_camera")
PORT_NAME = NameRule("port name", r"[a-zA-Z0-9_]+", 50, "video_in")
ACCOUNT_ID = NameRule("account id", r"[0-9A-Za-z_]+", 12, "123456789012")
#: An account id a user gives (--account-id, PANORAMA_ACCOUNT_ID, settings): 12 digits, as AWS
#: account ids are. ACCOUNT_ID stays the service model's looser pattern for names read back.
USER_ACCOUNT_ID = NameRule("account id", r"[0-9]{12}", 12, "123456789012")
PROJECT_NAME = NameRule("project name", r"[a-zA-Z0-9\-_]+", 128, "example_project")

DEVICE_ID = NameRule("device id", r"[a-zA-Z0-9\-_]+", 255, "device-0123456789abcdefghijklmn")
APPLICATION_INSTANCE_NAME = NameRule(
    "application instance name", r"[a-zA-Z0-9\-_]+", 255, "people_counter_front_door"
)
APPLICATION_INSTANCE_ID = NameRule(
    "application instance id",
    r"[a-zA-Z0-9\-_]+",
    255,
    "applicationInstance-0123456789abcdefghijklmn",
)
RUNTIME_ROLE_ARN = NameRule(
    "runtime role ARN",
    r"arn:[a-z0-9][-.a-z0-9]{0,62}:iam::[0-9]{12}:role/.+",
    255,
    "arn:aws:iam::123456789012:role/PanoramaApplicationRole",
)

PANORAMA_ACCOUNT = "panorama"


def check(rule: NameRule, value: str) -> str:
    """Return ``value`` when it satisfies ``rule``.

    Raises:
        UserError: naming the rule and what the value must look like.
    """
    if not rule.matches(value):
        log.debug("%s %r does not match %s", rule.kind, value, rule.pattern)
        raise UserError(f"invalid {rule.kind} {value!r}", hint=f"it {rule.describe()}")
    return value


def package_folder_name(account: str, name: str, version: str) -> str:
    """Folder of a node package under packages/: ``<account>-<name>-<version>`` (upstream)."""
    return f"{account}-{name}-{version}"


def split_package_ref(ref: str) -> tuple[str, str] | None:
    """Split a graph package name ``<account>::<name>`` into (account, name); None if malformed."""
    account, sep, name = ref.partition("::")
    if not sep or not account or not name:
        return None
    return account, name


def split_interface_ref(ref: str) -> tuple[str, str, str] | None:
    """Split a node interface ``<account>::<package>.<interface>``; None for value nodes or junk."""
    parts = split_package_ref(ref)
    if parts is None:
        return None
    package, dot, interface = parts[1].partition(".")
    if not dot or not package or not interface:
        return None
    return parts[0], package, interface
