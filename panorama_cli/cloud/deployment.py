"""deploy and status: application instances of the project's application graph.

``deploy`` sends graph.json as the ManifestPayload of CreateApplicationInstance (and an
optional nodeGraphOverrides file as ManifestOverridesPayload), after checking both locally:
the manifest schema and the API's size limit of :data:`PAYLOAD_LIMIT` characters
(ManifestPayloadData / ManifestOverridesPayloadData in the Panorama model). The payloads are
sent as compact one-line JSON (key order kept): the model's patterns ``^.+$`` / ``^.*$`` do
not admit line breaks, and whitespace would count against the size limit. ``status`` lists
or describes application instances and can wait for a deployment to end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.cloud.aws import panorama as api
from panorama_cli.cloud.polling import poll
from panorama_cli.errors import UserError
from panorama_cli.project import names, schemas
from panorama_cli.project.appgraph import (
    OVERRIDES_FOLDER,
    AppGraph,
    override_candidates,
    refuse_template,
)
from panorama_cli.project.manifests import decode, loads, read_regular
from panorama_cli.project.project import Project

#: Longest ManifestPayload / ManifestOverridesPayload data, characters (the API's limit).
PAYLOAD_LIMIT = 51_200

log = logging.getLogger(__name__)

Notify = Callable[[str], None]


@dataclass(frozen=True)
class DeployRequest:
    """What ``deploy`` asks for.

    Attributes:
        device_id: the Panorama appliance (DefaultRuntimeContextDevice).
        name: application instance name.
        description: free text, at most 255 characters.
        override_path: a nodeGraphOverrides JSON file, or None.
        runtime_role_arn: IAM role the application assumes on the device, or None.
    """

    device_id: str
    name: str
    description: str = ""
    override_path: Path | None = None
    runtime_role_arn: str | None = None


def compact(data: Any) -> str:
    """One-line JSON text of a manifest, key order kept, no insignificant whitespace."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _payload(path: Path, project: Project, kind: str) -> tuple[str, dict[str, Any]]:
    """Read and check one manifest; returns (compact payload text, parsed)."""
    rel = project.rel(path)
    text = decode(read_regular(path, rel), rel)  # regular files of bounded size only
    data = loads(text, rel)
    problems = schemas.check(kind, data, rel)
    if problems:
        raise UserError(problems[0].line(), hint="fix it; `panorama-cli validate` checks the graph")
    payload = compact(data)
    if len(payload) > PAYLOAD_LIMIT:
        raise UserError(
            f"{rel} is {len(payload)} characters without whitespace; Panorama accepts at most "
            f"{PAYLOAD_LIMIT}",
            hint="shorten it (descriptions, node count) or move parameters to an override file",
        )
    return payload, data


def resolve_override(project: Project, path: Path) -> Path:
    """The override file ``--override`` names: the path as given (relative to the current
    folder) or, for a bare file name not found there, the override file of that name beside
    graph.json or in ``<root>/deployment_overrides/``.

    Raises:
        UserError: no such file (the message lists the override files the project has).
    """
    if path.is_file() or path.parent != Path("."):
        return path
    known = override_candidates(project)
    found = next((p for p in known if p.name == path.name), None)
    if found is not None:
        log.debug("--override %s is %s", path, found)
        return found
    have = ", ".join(project.rel(p) for p in known) or "none"
    raise UserError(
        f"override file {path} not found (the project has: {have})",
        hint=f"pass a path, or put the file in {OVERRIDES_FOLDER}/",
    )


def check_request(project: Project, request: DeployRequest) -> tuple[str, str | None]:
    """Check the request and its manifests before anything is sent.

    Returns:
        ``(graph payload, overrides payload or None)``, see :func:`compact`.

    Raises:
        UserError: a bad device id / name / role ARN / description, a manifest that is not
            valid JSON, fails its schema, exceeds :data:`PAYLOAD_LIMIT`, or an override that
            replaces a node the graph does not define (file, JSON pointer and fix).
    """
    names.check(names.DEVICE_ID, request.device_id)
    names.check(names.APPLICATION_INSTANCE_NAME, request.name)
    if request.runtime_role_arn is not None:
        names.check(names.RUNTIME_ROLE_ARN, request.runtime_role_arn)
    if len(request.description) > 255:
        raise UserError("--description is longer than 255 characters")
    graph_text, graph_data = _payload(project.graph_path, project, schemas.GRAPH)
    if request.override_path is None:
        return graph_text, None
    override_path = resolve_override(project, request.override_path)
    refuse_template(project, override_path)
    overrides_text, overrides = _payload(override_path, project, schemas.OVERRIDES)
    graph = AppGraph.build(project, project.graph_path, graph_data, [(override_path, overrides)])
    if graph.issues:
        first = graph.issues[0]
        raise UserError(f"{first.file}#{first.pointer}: {first.message}", hint=first.hint or None)
    return graph_text, overrides_text


def deploy(project: Project, session: Any, request: DeployRequest) -> str:
    """CreateApplicationInstance of the project's graph on a device.

    Returns:
        The new ApplicationInstanceId.

    Raises:
        UserError: see :func:`check_request`; any AWS error.
    """
    graph_text, overrides_text = check_request(project, request)
    params: dict[str, Any] = {
        "Name": request.name,
        "ManifestPayload": {"PayloadData": graph_text},
        "DefaultRuntimeContextDevice": request.device_id,
    }
    if request.description:
        params["Description"] = request.description
    if overrides_text is not None:
        params["ManifestOverridesPayload"] = {"PayloadData": overrides_text}
    if request.runtime_role_arn:
        params["RuntimeRoleArn"] = request.runtime_role_arn
    return api.create_application_instance(api.client(session), **params)


def list_instances(session: Any, device_id: str | None = None) -> list[dict[str, Any]]:
    """ListApplicationInstances (all pages), optionally of one device.

    Raises:
        UserError: any AWS error.
    """
    if device_id is not None:
        names.check(names.DEVICE_ID, device_id)
    return api.list_application_instances(api.client(session), device_id)


def describe_instance(session: Any, instance_id: str) -> dict[str, Any]:
    """DescribeApplicationInstance.

    Raises:
        UserError: an invalid or unknown id, or any AWS error.
    """
    names.check(names.APPLICATION_INSTANCE_ID, instance_id)
    return api.describe_application_instance(api.client(session), instance_id)


def wait_for_instance(
    session: Any,
    instance_id: str,
    *,
    interval: float,
    timeout: float,
    notify: Notify = lambda _m: None,
) -> tuple[dict[str, Any], bool]:
    """Poll DescribeApplicationInstance until its Status is one of ``api.DEPLOYMENT_ENDED``.

    Args:
        interval: first wait between polls, seconds (doubles up to 30 s).
        timeout: longest wait, seconds.
        notify: receives "status: ...; next check in N s" lines.

    Returns:
        ``(last description, ended)``; ``ended`` is False when the timeout passed first.

    Raises:
        UserError: any AWS error.
    """
    names.check(names.APPLICATION_INSTANCE_ID, instance_id)
    panorama = api.client(session)

    def on_wait(found: dict[str, Any], seconds: float) -> None:
        notify(f"{instance_id}: {found.get('Status')}; next check in {seconds:.0f} s")

    return poll(
        lambda: api.describe_application_instance(panorama, instance_id),
        lambda found: found.get("Status") in api.DEPLOYMENT_ENDED,
        interval=interval,
        timeout=timeout,
        on_wait=on_wait,
    )


def failed(instance: dict[str, Any]) -> bool:
    """Whether an application instance's Status is a failed deployment."""
    return instance.get("Status") in api.DEPLOYMENT_FAILURES
