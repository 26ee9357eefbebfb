"""Semantic checks of the application graph (graph.json and its override files).

Nodes name listed packages and interfaces those packages define; edges go from an output
(or a value node) to an input of the same type; network routing rules and node overrides
name existing nodes. Mixed into the validator of :mod:`panorama_cli.validation`, which
provides ``add``, ``load``, ``project``, ``packages`` (schema-valid local packages by name)
and ``broken`` (folders whose package.json is unusable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from panorama_cli import names, schemas
from panorama_cli.errors import UserError
from panorama_cli.manifests import load_json, pointer
from panorama_cli.problems import WARNING

VALUE_TYPES = ("string", "int32", "float32", "boolean")

# Ports of the Panorama-provided packages that sample applications use.
KNOWN_INTERFACES: dict[str, dict[str, dict[str, dict[str, str]]]] = {
    "panorama::abstract_rtsp_media_source": {
        "rtsp_v1_interface": {"inputs": {}, "outputs": {"video_out": "media"}},
    },
    "panorama::hdmi_data_sink": {
        "hdmi0": {"inputs": {"video_in": "media"}, "outputs": {}},
    },
}

Ports = dict[str, dict[str, str]]  # {"inputs": {port: type}, "outputs": {port: type}}


class GraphChecks:
    """The graph half of the validator (see the module docstring for what it relies on)."""

    def check_graph(self) -> None:
        try:
            path = self.project.graph_path
        except UserError as exc:
            self.add(self.project.graphs_dir, "", exc.message, exc.hint or "")
            return
        data = self.load(path, schemas.GRAPH)
        if data is None:
            return
        graph = data["nodeGraph"]
        listed = self.check_graph_packages(path, graph["packages"])
        nodes = self.check_nodes(path, graph["nodes"], listed)
        for i, edge in enumerate(graph.get("edges", [])):
            self.check_edge(path, pointer("nodeGraph", "edges", i), edge, nodes)
        for i, rule in enumerate(graph.get("networkRoutingRules", [])):
            self.check_routing(path, pointer("nodeGraph", "networkRoutingRules", i), rule, nodes)
        for override in sorted(path.parent.glob("*.json")):
            if override != path:
                self.check_overrides(override, nodes)

    def check_graph_packages(self, path: Path, refs: list[dict[str, Any]]) -> set[str]:
        if not refs:
            self.add(
                path,
                "/nodeGraph/packages",
                "the graph lists no package",
                "add one with create-package or add-panorama-package",
            )
        listed: set[str] = set()
        for i, ref in enumerate(refs):
            ptr = pointer("nodeGraph", "packages", i)
            name, version = ref["name"], ref["version"]
            if name in listed:
                self.add(path, ptr, f"package {name} is listed twice", "keep one entry")
            listed.add(name)
            account, package_name = names.split_package_ref(name) or ("", "")
            if account == names.PANORAMA_ACCOUNT:
                continue
            package = self.packages.get(package_name)
            if (
                package is None
                and names.package_folder_name(account, package_name, version) in self.broken
            ):
                continue
            if package is None:
                self.add(
                    path,
                    ptr,
                    f"package {name} {version} has no folder under packages/",
                    f"run `panorama-cli create-package --name {package_name}` or remove it",
                )
                continue
            expected = names.package_folder_name(account, package_name, version)
            if package.version != version:
                self.add(
                    path,
                    ptr + "/version",
                    f"graph names {name} version {version} but package.json has {package.version}",
                    "make the versions agree",
                )
            elif package.folder.name != expected:
                self.add(
                    package.folder,
                    "",
                    f"folder should be packages/{expected} for {name} {version}",
                    "rename the folder, or run import-application to set the account",
                )
        for package in self.packages.values():
            if not any((names.split_package_ref(r) or ("", ""))[1] == package.name for r in listed):
                self.add(
                    package.manifest_path,
                    "",
                    f"package {package.name} is not listed in {self.project.rel(path)}",
                    "add it to nodeGraph.packages or delete the folder",
                    WARNING,
                )
        return listed

    def interface_ports(
        self, interface_ref: str, listed: set[str]
    ) -> tuple[Ports | None, str | None]:
        """(ports, error) for a node interface; ports None when unknown but acceptable."""
        parts = names.split_interface_ref(interface_ref)
        if parts is None:
            return None, f"interface {interface_ref!r} is not <account>::<package>.<interface>"
        account, package_name, interface_name = parts
        ref = f"{account}::{package_name}"
        if ref not in listed:
            return (
                None,
                f"interface {interface_ref} names package {ref}, which the graph does not list",
            )
        if account == names.PANORAMA_ACCOUNT:
            known = KNOWN_INTERFACES.get(ref)
            if known is None:
                return None, None
            if interface_name not in known:
                return (
                    None,
                    f"package {ref} has no interface {interface_name!r} "
                    f"(it has {', '.join(known)})",
                )
            return known[interface_name], None
        package = self.packages.get(package_name)
        if package is None:
            return None, None  # reported with the package list
        interface = package.interface(interface_name)
        if interface is None:
            have = ", ".join(i["name"] for i in package.interfaces()) or "none"
            return None, f"package {ref} defines no interface {interface_name!r} (it has: {have})"
        return {
            direction: {p["name"]: p["type"] for p in interface.get(direction, [])}
            for direction in ("inputs", "outputs")
        }, None

    def check_nodes(
        self, path: Path, nodes: list[dict[str, Any]], listed: set[str]
    ) -> dict[str, Any]:
        if not nodes:
            self.add(
                path,
                "/nodeGraph/nodes",
                "the graph has no node",
                "add nodes with add-panorama-package, add-raw-model or build-container",
            )
        by_name: dict[str, Any] = {}
        for i, node in enumerate(nodes):
            ptr = pointer("nodeGraph", "nodes", i)
            name, interface = node["name"], node["interface"]
            if not names.NODE_NAME.matches(name):
                self.add(
                    path,
                    ptr + "/name",
                    f"invalid node name {name!r}",
                    f"it {names.NODE_NAME.describe()}",
                )
            if name in by_name:
                self.add(
                    path, ptr + "/name", f"node {name!r} is defined twice", "rename one of them"
                )
                continue
            if interface in VALUE_TYPES:
                by_name[name] = interface
                continue
            ports, error = self.interface_ports(interface, listed)
            if error:
                self.add(
                    path,
                    ptr + "/interface",
                    error,
                    "fix the interface or add the package / interface it names",
                )
            by_name[name] = ports
        return by_name

    def check_edge(self, path: Path, ptr: str, edge: dict[str, str], nodes: dict[str, Any]) -> None:
        producer_type = self.port_type(path, ptr + "/producer", edge["producer"], nodes, "outputs")
        consumer_type = self.port_type(path, ptr + "/consumer", edge["consumer"], nodes, "inputs")
        if producer_type and consumer_type and producer_type != consumer_type:
            self.add(
                path,
                ptr,
                f"edge connects a {producer_type} output to a {consumer_type} input",
                "connect ports of the same type",
            )

    def port_type(
        self, path: Path, ptr: str, ref: str, nodes: dict[str, Any], direction: str
    ) -> str | None:
        node, dot, port = ref.partition(".")
        if node not in nodes:
            self.add(path, ptr, f"node {node!r} does not exist", "name a node of nodeGraph.nodes")
            return None
        target = nodes[node]
        if isinstance(target, str):  # value node: its interface is its type
            if dot or direction == "inputs":
                self.add(
                    path,
                    ptr,
                    f"{node!r} is a {target} value node: it has no ports and can only "
                    "be a producer",
                    'use "producer": "<value node name>"',
                )
                return None
            return target
        if not dot:
            self.add(path, ptr, f"{ref!r} names no port", f'use "{node}.<port>"')
            return None
        if target is None:
            return None
        ports = target[direction]
        if port not in ports:
            other = "outputs" if direction == "inputs" else "inputs"
            what = f"an {direction[:-1]} of {node!r}"
            if port in target[other]:
                self.add(
                    path,
                    ptr,
                    f"port {port!r} is an {other[:-1]}, not {what}",
                    "edges go from an output (producer) to an input (consumer)",
                )
            else:
                have = ", ".join(ports) or "none"
                self.add(
                    path,
                    ptr,
                    f"port {port!r} is not {what} (it has: {have})",
                    "use a port of the node's interface",
                )
            return None
        return ports[port]

    def check_routing(
        self, path: Path, ptr: str, rule: dict[str, Any], nodes: dict[str, Any]
    ) -> None:
        if rule["node"] not in nodes:
            self.add(
                path,
                ptr + "/node",
                f"node {rule['node']!r} does not exist",
                "name a node of nodeGraph.nodes",
            )

    def check_overrides(self, path: Path, nodes: dict[str, Any]) -> None:
        try:
            data = load_json(path)
        except UserError as exc:
            self.add(path, "", exc.message, exc.hint or "")
            return
        if not isinstance(data, dict) or "nodeGraphOverrides" not in data:
            return
        data = self.load(path, schemas.OVERRIDES)
        if data is None:
            return
        body = data["nodeGraphOverrides"]
        override_nodes = {n["name"] for n in body.get("nodes", [])}
        for i, override in enumerate(body.get("nodeOverrides", [])):
            ptr = pointer("nodeGraphOverrides", "nodeOverrides", i)
            if override["replace"] not in nodes:
                self.add(
                    path,
                    ptr + "/replace",
                    f"replaces node {override['replace']!r}, which the graph does not define",
                    "name a node of graph.json",
                )
            for j, item in enumerate(override["with"]):
                if item["name"] not in override_nodes and item["name"] not in nodes:
                    self.add(
                        path,
                        f"{ptr}/with/{j}/name",
                        f"node {item['name']!r} is not defined",
                        "define it in this file's nodes",
                    )
