"""``deploy --target compose|swarm|kubernetes|greengrass``: a bundle of ``export`` onto its
engine. The only part of the fleet that talks to an engine, each behind its own module
(:mod:`.compose_deploy`, :mod:`.kube_deploy`, :mod:`.greengrass_deploy`).

A Ctrl-C (or SIGTERM) during a deploy raises :class:`DeployInterrupted` carrying one line: what
had been applied, what goes on without the command and how to take it back
(:class:`~.applied.Applied`), never the Panorama service's message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.errors import UsageError, UserError
from panorama_cli.fleet.applied import Applied

log = logging.getLogger(__name__)

FLEET_TARGETS = ("compose", "swarm", "kubernetes", "greengrass")


@dataclass(frozen=True)
class FleetDeploy:
    """``deploy``'s options for a fleet target.

    Attributes:
        target: one of :data:`FLEET_TARGETS`.
        bundle: the bundle folder (``export --output-dir``).
        wait: wait until serve is ready (compose, swarm), the workloads are ready
            (kubernetes), the deployment succeeded (greengrass).
        timeout_s / poll_s: how long to wait and how often to ask, seconds.
        down: compose / swarm: take the application down instead.
        volumes: compose, with ``down``: also remove the volumes (storage and logs).
        context / namespace: kubernetes.
        bucket / target_arn: greengrass.
    """

    target: str
    bundle: Path
    wait: bool = False
    timeout_s: float = 300.0
    poll_s: float = 5.0
    down: bool = False
    volumes: bool = False
    context: str | None = None
    namespace: str | None = None
    bucket: str | None = None
    target_arn: str | None = None


class DeployInterrupted(KeyboardInterrupt):
    """A fleet deploy was interrupted (Ctrl-C or SIGTERM).

    Attributes:
        note: one line: what was applied and how to take it back (:meth:`.Applied.note`).
        cause: the ``KeyboardInterrupt`` (an :class:`panorama_cli.interrupts.Terminated` for
            SIGTERM).
    """

    def __init__(self, note: str, cause: KeyboardInterrupt) -> None:
        super().__init__(note)
        self.note = note
        self.cause = cause


def _greengrass_steps(applied: Applied, target_arn: str) -> Callable[[str], None]:
    """Records :mod:`.greengrass_deploy`'s progress lines (``uploading KEY ...``,
    ``component NAME created``, ``deployment ID created for ARN``) as steps of ``applied``."""

    def record(line: str) -> None:
        words = line.split()
        if line.startswith("uploading ") and "artifacts uploaded to S3" not in applied.done:
            applied.done.append("artifacts uploaded to S3")
        elif words[:1] == ["component"] and line.endswith(" created"):
            applied.done.append(f"component {words[1]}")
        elif words[:1] == ["deployment"] and " created for " in line:
            applied.done.append(f"deployment {words[1]} for {target_arn}")
            applied.goes_on = "the core devices apply it on their own"
            applied.undo = (
                f"aws greengrassv2 cancel-deployment --deployment-id {words[1]} (devices that "
                "applied it keep the component until a new deployment for the target leaves "
                "it out)"
            )

    return record


def _name(bundle: Path) -> str:
    """The application's name: from compose.yaml's serve labels, else the folder's name."""
    from panorama_cli.fleet.model import LABEL_APP, dns_label

    path = bundle / "compose.yaml"
    if path.is_file():
        import yaml  # type: ignore[import-untyped]

        labels = yaml.safe_load(path.read_text())["services"]["serve"].get("labels", {})
        if labels.get(LABEL_APP):
            return str(labels[LABEL_APP])
    return dns_label(bundle.resolve().name)


def deploy_bundle(
    options: FleetDeploy,
    notify: Callable[[str], None],
    session_factory: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Deploy ``options.bundle`` to ``options.target``; returns the target's report.

    Raises:
        UsageError: a flag the target needs is missing.
        UserError: no bundle, an engine that does not answer, a deployment that fails.
    """
    applied = Applied()
    try:
        return _deploy(options, notify, session_factory, applied)
    except KeyboardInterrupt as stopped:
        if isinstance(stopped, DeployInterrupted):
            raise
        raise DeployInterrupted(applied.note(), stopped) from None


def _deploy(
    options: FleetDeploy,
    notify: Callable[[str], None],
    session_factory: Callable[[], Any] | None,
    applied: Applied,
) -> dict[str, Any]:
    bundle = Path(options.bundle)
    if not bundle.is_dir():
        raise UserError(
            f"no bundle folder {bundle}",
            hint=f"make it: panorama-cli export --target {options.target} --output-dir {bundle}",
        )
    log.debug("deploy %s to %s", bundle, options.target)
    if options.target in ("compose", "swarm"):
        from panorama_cli.fleet import compose_deploy

        name = _name(bundle)
        if options.target == "compose":
            return compose_deploy.deploy_compose(
                bundle, name, down=options.down, volumes=options.volumes, wait=options.wait,
                timeout_s=options.timeout_s, notify=notify, applied=applied,
            )  # fmt: skip
        return compose_deploy.deploy_swarm(
            bundle, name, down=options.down, wait=options.wait, timeout_s=options.timeout_s,
            notify=notify, applied=applied,
        )  # fmt: skip
    if options.target == "kubernetes":
        from panorama_cli.fleet import kube_deploy

        manifests = sorted(bundle.glob("*.yaml"))
        if not manifests:
            raise UserError(
                f"no Kubernetes manifests (*.yaml) in {bundle}",
                hint=f"make them: panorama-cli export --target kubernetes --output-dir {bundle}",
            )
        return kube_deploy.deploy(
            manifests, context=options.context, namespace=options.namespace,
            timeout_s=options.timeout_s, poll_s=options.poll_s, notify=notify,
            wait=options.wait, applied=applied,
        )  # fmt: skip
    if options.target == "greengrass":
        from panorama_cli.fleet import greengrass_deploy

        if not options.bucket or not options.target_arn:
            raise UsageError(
                "deploy --target greengrass needs --bucket and --target-arn",
                hint="--bucket BUCKET (artifacts) --target-arn arn:aws:iot:REGION:ACCOUNT:"
                "thinggroup/NAME",
            )
        if session_factory is None:
            raise UserError("no AWS session for deploy --target greengrass")
        record = _greengrass_steps(applied, options.target_arn)

        def say(line: str) -> None:
            record(line)
            notify(line)

        return greengrass_deploy.deploy(
            bundle, session_factory(), bucket=options.bucket, target_arn=options.target_arn,
            wait=options.wait, poll_s=options.poll_s, timeout_s=options.timeout_s,
            notify=say,
        )  # fmt: skip
    raise UsageError(
        f"unknown target {options.target!r}", hint=f"use one of {', '.join(FLEET_TARGETS)}"
    )
