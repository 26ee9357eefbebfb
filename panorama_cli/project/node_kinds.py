"""What a node of an application graph is: its kind and the value types of its ports.

Shared by the project model (a package's kind) and the application graph (a node's kind).
Terms follow the manifest schema ver_2021-01-01: an interface ``category`` is one of
``media_source``, ``media_sink``, ``business_logic``, ``ml_model``; a port or a parameter node
has one of the types ``media``, ``string``, ``int32``, ``float32``, ``boolean``.
"""

from __future__ import annotations

import enum
import logging
from typing import Literal

log = logging.getLogger(__name__)

PortType = Literal["media", "string", "int32", "float32", "boolean"]

#: Interfaces of parameter nodes: the node *is* a value of this type.
VALUE_TYPES: tuple[str, ...] = ("string", "int32", "float32", "boolean")


class NodeKind(str, enum.Enum):
    """The role of a node (or a node package) in an application graph."""

    CAMERA = "camera"
    BUSINESS_LOGIC = "business_logic"
    MODEL = "model"
    DATA_SINK = "data_sink"
    PARAMETER = "parameter"
    UNKNOWN = "unknown"


#: Interface ``category`` (manifest schema) -> node kind.
CATEGORY_KINDS: dict[str, NodeKind] = {
    "media_source": NodeKind.CAMERA,
    "media_sink": NodeKind.DATA_SINK,
    "business_logic": NodeKind.BUSINESS_LOGIC,
    "ml_model": NodeKind.MODEL,
}
