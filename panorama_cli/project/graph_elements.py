"""The parts of an application graph: nodes with typed ports, edges, routing rules, packages.

Values only (frozen dataclasses); :mod:`panorama_cli.project.appgraph` builds them from the
manifests.
Formats: manifest schema ver_2021-01-01 (node, edge, interface, port, networkRoutingRule).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from panorama_cli.project.node_kinds import NodeKind
from panorama_cli.project.node_package import Package

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Port:
    """One port of a node's interface.

    Attributes:
        name: port name, e.g. ``video_in``.
        type: ``media``, ``string``, ``int32``, ``float32`` or ``boolean`` (as declared).
        direction: ``input`` or ``output``.
        default: the interface's ``default``, typed like a value of ``type`` (None if none).
        description: the interface's description of the port, if any.
    """

    name: str
    type: str
    direction: str
    default: object | None = None
    description: str | None = None


@dataclass(frozen=True)
class Node:
    """A node of the application graph (after overrides).

    Attributes:
        name: node name.
        kind: camera, business logic, model, data sink, parameter or unknown.
        interface: as written in the manifest, e.g. ``123456789012::SAMPLE_CODE.interface``
            or ``float32`` (parameters).
        package: ``<account>::<name>`` (None for parameters or an unparsable interface).
        package_version: the version the graph (or an override) lists for the package.
        interface_name: the part after the dot.
        is_local: its package folder is in the project's packages/.
        package_folder: ``packages/<account>-<name>-<version>`` when local.
        inputs / outputs: every port the interface declares, by name, in declaration order.
        value: parameters: the value typed by the interface (int32 -> int, float32 -> float even
            when written ``60``, boolean -> bool, string -> str); schema default when absent.
        overridable: the manifest's ``overridable``.
        decorator: the manifest's ``decorator`` (title, description).
        resolved: the interface was found, so inputs/outputs are authoritative.
        unresolved: why the interface cannot be resolved (a validation error), else None.
        source: the manifest the node comes from; pointer: its JSON pointer there.
        override_mandatory: the manifest's ``overrideMandatory``.
        launch: ``launch`` (``onAppStart``/``onSignal``...) when given.
        replaces: the graph node this node took the place of (nodeOverrides), else None.
        inbound_ports: container ports the interface declares in ``network.inboundPorts``.
    """

    name: str
    kind: NodeKind
    interface: str
    package: str | None
    package_version: str | None
    interface_name: str | None
    is_local: bool
    package_folder: Path | None
    inputs: Mapping[str, Port]
    outputs: Mapping[str, Port]
    value: object | None = None
    overridable: bool = False
    decorator: Mapping[str, Any] | None = None
    resolved: bool = False
    unresolved: str | None = None
    source: Path | None = None
    pointer: str = ""
    override_mandatory: bool = False
    launch: str | None = None
    replaces: str | None = None
    inbound_ports: tuple[int, ...] = ()

    def port(self, name: str, direction: str) -> Port | None:
        """The ``input`` or ``output`` port called ``name``, or None."""
        return (self.inputs if direction == "input" else self.outputs).get(name)


@dataclass(frozen=True)
class Edge:
    """An edge ``producer -> consumer``.

    Attributes:
        producer: ``node.port``, or ``node`` for a parameter (or whole-node) producer.
        consumer: ``node.port``.
        producer_node / producer_port: the two halves (port None when not given).
        consumer_node / consumer_port: the two halves (port "" when not given: invalid).
        source / pointer: where the edge is written (after a replacement: the original edge).
    """

    producer: str
    consumer: str
    producer_node: str
    producer_port: str | None
    consumer_node: str
    consumer_port: str
    source: Path | None = None
    pointer: str = ""

    @classmethod
    def parse(cls, producer: str, consumer: str, source: Path | None, ptr: str) -> Edge:
        """Split ``node.port`` references (the first dot separates node and port)."""
        p_node, p_dot, p_port = producer.partition(".")
        c_node, _c_dot, c_port = consumer.partition(".")
        return cls(
            producer, consumer, p_node, p_port if p_dot else None, c_node, c_port, source, ptr
        )

    def renamed(self, old: str, new: str) -> Edge:
        """This edge with node ``old`` (either end) renamed to ``new``."""
        producer = self.producer if self.producer_node != old else _rejoin(new, self.producer_port)
        consumer = self.consumer if self.consumer_node != old else _rejoin(new, self.consumer_port)
        return Edge.parse(producer, consumer, self.source, self.pointer)


def _rejoin(node: str, port: str | None) -> str:
    return f"{node}.{port}" if port is not None else node


@dataclass(frozen=True)
class RoutingRule:
    """``networkRoutingRules[i]``: host port -> container port of a node (TCP port numbers)."""

    node: str
    container_port: int
    host_port: int
    decorator: Mapping[str, Any] | None = None
    source: Path | None = None
    pointer: str = ""


@dataclass(frozen=True)
class PackageRef:
    """An entry of ``nodeGraph.packages`` (or an override's ``packages``).

    Attributes:
        name: ``<account>::<name>``; version: as listed.
        account / package_name: the two halves ("" when the name is malformed).
        local: the project's package of that name, or None.
        source / pointer: where it is listed.
    """

    name: str
    version: str
    account: str
    package_name: str
    local: Package | None
    source: Path
    pointer: str


@dataclass(frozen=True)
class KnownInterface:
    """An interface of a Panorama-provided package: its kind and (port, type) pairs."""

    kind: NodeKind
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]

    @property
    def media_port(self) -> str | None:
        """The port an edge connects: the first media output, else the first media input."""
        for name, type_name in (*self.outputs, *self.inputs):
            if type_name == "media":
                return name
        return None


#: Interfaces of the Panorama-provided packages (account ``panorama``) that applications use.
WELL_KNOWN: dict[str, dict[str, KnownInterface]] = {
    "panorama::abstract_rtsp_media_source": {
        "rtsp_v1_interface": KnownInterface(
            NodeKind.CAMERA,
            (("username", "string"), ("password", "string"), ("streamUrl", "string")),
            (("video_out", "media"),),
        ),
    },
    "panorama::hdmi_data_sink": {
        "hdmi0": KnownInterface(NodeKind.DATA_SINK, (("video_in", "media"),), ()),
    },
}

_ZERO: dict[str, object] = {"string": "", "int32": 0, "float32": 0.0, "boolean": False}


def typed_value(type_name: str, value: object) -> object:
    """``value`` as the Python type of a manifest value type: int32 -> int, float32 -> float
    (``20`` -> ``20.0``), boolean -> bool, string -> str; None -> the schema default
    (0, 0.0, False, ""); other types (``media``) -> unchanged."""
    if value is None:
        return _ZERO.get(type_name)
    try:
        if (
            type_name == "float32"
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ):
            return float(value)
        if type_name == "int32" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    except (OverflowError, ValueError):
        return value
    return value


def ports(entries: Any, direction: str) -> dict[str, Port]:
    found: dict[str, Port] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        type_name = str(entry.get("type", ""))
        default = entry.get("default")
        description = entry.get("description")
        found.setdefault(
            entry["name"],
            Port(
                entry["name"],
                type_name,
                direction,
                typed_value(type_name, default) if default is not None else None,
                description if isinstance(description, str) else None,
            ),
        )
    return found


def frozen(mapping: dict[str, Port]) -> Mapping[str, Port]:
    return MappingProxyType(mapping)


NO_PORTS: Mapping[str, Port] = MappingProxyType({})


def declared_inbound_ports(interface: dict[str, Any]) -> tuple[int, ...]:
    """Container ports (TCP) an interface declares in ``network.inboundPorts[].port``."""
    network = interface.get("network")
    ports = network.get("inboundPorts") if isinstance(network, dict) else None
    return tuple(
        int(p["port"])
        for p in (ports if isinstance(ports, list) else [])
        if isinstance(p, dict) and isinstance(p.get("port"), int)
    )
