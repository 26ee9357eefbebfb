"""``run --in-container``: which image each business-logic node runs in, on which platform,
with which ports published, checked before the run folder exists.

The default image of a node is the one its package's container asset was exported from
(build-container / export-container record the image id for the asset file in the build cache,
:func:`panorama_cli.build.image_cache.images_for`), for the asset the node's interface names,
else any container asset of the package: found by id, never by a tag another build can move.
When that image is gone from the engine, the project's own tag ``panorama-cli/<package
folder>-<project key>:<asset>`` (:func:`panorama_cli.build.containers.image_tag`) stands in,
with one note saying so (rebuild with build-container). ``--image IMAGE`` (every node) or
``--image NODE=IMAGE`` chooses another one.

The platform is the image's own (``--platform`` must agree with it); an arm64 image on an
x86_64 machine runs under qemu (the binfmt pre-flight of build-container applies) and the run
says so once. ``networkRoutingRules`` of the graph and overrides publish containerPort ->
hostPort on 127.0.0.1; ``network.inboundPorts`` without a rule stay closed, as on the device.
"""

from __future__ import annotations

import logging
import platform as host_platform
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UsageError, UserError
from panorama_cli.localrun.apps.container_app import ContainerRuntime, NodeImage

if TYPE_CHECKING:
    from panorama_cli.localrun.plan import BusinessNode, RunPlan

log = logging.getLogger(__name__)

#: Address published host ports listen on (this machine only).
PUBLISH_ADDRESS = "127.0.0.1"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def host_arch() -> str:
    """``amd64`` / ``arm64`` (Docker's names) of this machine."""
    machine = host_platform.machine().lower()
    return _ARCH.get(machine, machine)


def parse_images(
    values: tuple[str, ...] | list[str], *, in_container: bool, platform: str | None
) -> dict[str, str]:
    """``--image`` values (``IMAGE`` or ``NODE=IMAGE``; image references hold no ``=``) ->
    {"" or node: image}.

    Raises:
        UserError: ``--image``/``--platform`` without ``--in-container``, or two images for
            every node.
    """
    if not in_container and (values or platform):
        flag = "--image" if values else "--platform"
        raise UsageError(
            f"{flag} applies to --in-container runs",
            hint=f"add --in-container, or leave {flag} out",
        )
    images: dict[str, str] = {}
    for value in values:
        node, sep, image = value.partition("=")
        key, image = (node.strip(), image.strip()) if sep else ("", value.strip())
        if key in images:
            what = f"node {key}" if key else "every node"
            raise UsageError(f"--image given twice for {what}", hint="give one image per node")
        images[key] = image
    return images


def image_choices(images: Mapping[str, str], business: list[BusinessNode]) -> dict[str, str]:
    """``--image`` values -> node -> image (only the nodes given one).

    Args:
        images: ``""`` -> image for every node, node name -> image for that node.

    Raises:
        UserError: a ``NODE=IMAGE`` names no business-logic node, or an empty image.
    """
    names = [b.node.name for b in business]
    chosen: dict[str, str] = {}
    for key, image in images.items():
        if not image.strip():
            raise UsageError("--image: empty image name", hint="e.g. --image my/app:1.0")
        if key and key not in names:
            raise UsageError(
                f"--image {key}=...: unknown business-logic node {key!r}",
                hint=f"business-logic nodes: {', '.join(names)}",
            )
    for name in names:
        if name in images:
            chosen[name] = images[name]
        elif "" in images:
            chosen[name] = images[""]
    return chosen


def _container_uris(business: BusinessNode) -> dict[str, str]:
    """Container asset name -> its assetUri, in package.json order."""
    found: dict[str, str] = {}
    for asset in business.package.assets():
        impls = asset.get("implementations") or []
        for impl in impls:
            if isinstance(impl, dict) and impl.get("type") == "container":
                found.setdefault(str(asset.get("name", "")), str(impl.get("assetUri") or ""))
    return found


def default_images(business: BusinessNode) -> tuple[list[str], list[str]]:
    """(candidate image tags, container asset names) of the node's package, best first:
    the asset its interface names, then the package's other container assets."""
    from panorama_cli.build.containers import image_tag

    package = business.package
    assets = list(_container_uris(business))
    wanted = next(
        (
            str(i.get("asset"))
            for i in package.interfaces()
            if i.get("name") == business.node.interface_name and i.get("asset")
        ),
        None,
    )
    if wanted:
        assets = [wanted, *(a for a in assets if a != wanted)]
    assets = [a for a in dict.fromkeys(assets) if a]
    return [image_tag(package, a) for a in assets], assets


def _lookup(client: Any, reference: str) -> Any | None:
    import docker

    try:
        return client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise UserError(f"the Docker engine cannot look up image {reference}: {exc}") from None


def resolve_image(
    client: Any, business: BusinessNode, given: str | None, wanted_platform: str | None
) -> NodeImage:
    """The image, platform and environment of one node (see the module docstring).

    Raises:
        UserError: the image is not in the engine (how to build it), it is not a Linux
            amd64/arm64 image, it does not match ``--platform``, or this machine cannot run
            its platform (no qemu binfmt handler: the fix).
    """
    from panorama_cli.build import platforms

    name = business.node.name
    note = ""
    if given:
        image = _lookup(client, given)
        reference = given
        if image is None:
            raise UserError(
                f"--image {given}: not in the Docker engine",
                hint=f"build or pull it first (docker image ls shows what is there): {given}",
            )
    else:
        reference, image, note = _exported_image(client, business)
        if image is None:
            tags, assets = default_images(business)
            asset = assets[0] if assets else "code"
            folder = business.package_json.rsplit("/", 1)[0]
            looked = f" (looked for {', '.join(tags)})" if tags else ""
            raise UserError(
                f"node {name}: no image of {folder} in the Docker engine{looked}",
                hint=f"build it: panorama-cli build-container --container-asset-name {asset} "
                f"--package-path {folder} --platform linux/{host_arch()}, or pass --image IMAGE",
            )
    attrs = image.attrs or {}
    arch = str(attrs.get("Architecture", ""))
    os_name = str(attrs.get("Os", "linux"))
    platform = f"{os_name}/{arch}"
    if os_name != "linux" or arch not in ("amd64", "arm64"):
        raise UserError(
            f"node {name}: image {reference} is {platform}; run needs linux/amd64 or linux/arm64"
        )
    if wanted_platform and platforms.target_machine(wanted_platform) != platforms.target_machine(
        platform
    ):
        raise UserError(
            f"node {name}: image {reference} is {platform}, not {wanted_platform} (--platform)",
            hint=f"build it for {wanted_platform} (build-container --platform {wanted_platform})"
            " or leave --platform out",
        )
    platforms.check_platform(platform)
    env = (attrs.get("Config") or {}).get("Env") or []
    python_path = next((e.split("=", 1)[1] for e in env if e.startswith("PYTHONPATH=")), "")
    return NodeImage(name, reference, str(image.id), platform, python_path=python_path, note=note)


def _exported_image(client: Any, business: BusinessNode) -> tuple[str, Any | None, str]:
    """(reference, image or None, note) of a node without ``--image``: the image its asset
    was exported from, by id; else the project's tag, with a note (see the module doc)."""
    from panorama_cli.build import image_cache

    tags, assets = default_images(business)
    uris = _container_uris(business)
    for asset in assets:
        uri = uris.get(asset, "")
        for image_id in image_cache.images_for(uri) if uri else []:
            image = _lookup(client, image_id)
            if image is not None:
                log.debug(
                    "node %s: asset %s was exported from %s", business.node.name, uri, image_id
                )
                return image_id, image, ""
    for tag, asset in zip(tags, assets, strict=True):
        image = _lookup(client, tag)
        if image is None:
            continue
        uri = uris.get(asset, "")
        why = (
            "is not in the Docker engine any more"
            if uri and image_cache.images_for(uri)
            else "was not exported on this machine (no image id recorded)"
        )
        note = (
            f"node {business.node.name}: the image assets/{uri} was exported from {why}; "
            f"running {tag} instead, which may differ (rebuild with build-container to make "
            "them one)"
        )
        return tag, image, note
    return "", None, ""


def port_notes(plan: RunPlan, images: dict[str, NodeImage]) -> list[str]:
    """Fill each node's ports from ``networkRoutingRules``; notes on what is published and
    which ``inboundPorts`` stay closed.

    Raises:
        UserError: two rules publish the same hostPort.
    """
    notes = []
    taken: dict[int, str] = {}
    for rule in plan.graph.routing_rules:
        target = images.get(rule.node)
        if target is None:
            continue
        if rule.host_port in taken:
            raise UserError(
                f"networkRoutingRules: hostPort {rule.host_port} is published twice "
                f"({taken[rule.host_port]} and {rule.node})",
                hint="give each rule its own hostPort",
            )
        taken[rule.host_port] = rule.node
        target.ports[rule.container_port] = rule.host_port
        notes.append(
            f"networkRoutingRules: node {rule.node} containerPort {rule.container_port} -> "
            f"{PUBLISH_ADDRESS}:{rule.host_port}"
        )
    for node, ports in plan.graph.inbound_ports.items():
        target = images.get(node)
        closed = [p for p in ports if target is not None and p not in target.ports]
        if closed:
            notes.append(
                f"node {node}: inboundPorts {', '.join(map(str, closed))} have no "
                "networkRoutingRule: closed, as on the device"
            )
    return notes


def prepare_containers(
    plan: RunPlan, notify: Callable[[str, dict[str, Any]], None]
) -> ContainerRuntime:
    """Connect to Docker and resolve every business-logic node's image (see the module
    docstring); removes containers of earlier runs whose runner was killed.

    Args:
        plan: the run's plan (``options.images`` / ``platform`` / ``device``).
        notify: receives ``("note", {"text"})`` events (emulation, ports, leftovers).

    Returns:
        The :class:`~.container_app.ContainerRuntime` that starts the apps.

    Raises:
        UserError: Docker unreachable, an image missing or for another platform, no
            emulation, ``--python`` given (the image's interpreter runs), two rules on one
            hostPort.
    """
    from panorama_cli.build import docker_client, docker_engine

    options = plan.options
    if options.python:
        raise UserError(
            "--python applies to runs on this machine; --in-container runs the image's python3",
            hint="leave --python out, or put that interpreter in the image",
        )
    chosen = image_choices(options.images, plan.business)
    client = docker_client.connect()
    try:
        if getattr(client.api, "base_url", "") != "http+docker://localhost":
            raise UserError(
                "--in-container needs the Docker engine of this machine (a unix socket): the "
                "run folder is bind-mounted and frames are shared memory",
                hint="point DOCKER_HOST at this machine's engine (unix:///var/run/docker.sock)",
            )
        removed = docker_engine.remove_stale_containers(client)
        if removed:
            notify("note", {"text": f"removed {len(removed)} container(s) left by a killed run"})
        images = {
            b.node.name: resolve_image(client, b, chosen.get(b.node.name), options.platform)
            for b in plan.business
        }
        notes = [i.note for i in images.values() if i.note] + port_notes(plan, images)
    except BaseException:
        client.close()
        raise
    foreign = sorted({i.platform for i in images.values() if i.platform != f"linux/{host_arch()}"})
    if foreign:
        notify(
            "note",
            {
                "text": f"{' and '.join(foreign)} image(s) run under qemu emulation on this "
                f"{host_platform.machine()} machine: slow (start-up and every frame)"
            },
        )
    for node_image in images.values():
        log.debug("node %s: image %s (%s)", node_image.node, node_image.image, node_image.platform)
    for note in notes:
        notify("note", {"text": note})
    return ContainerRuntime(client, images, run_dir=plan.run_dir, gpu_nodes=set(plan.gpu_nodes))
