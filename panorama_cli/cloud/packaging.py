"""package-application: register the project's node packages with AWS Panorama.

For each package (see :mod:`panorama_cli.cloud.package_plan` for the local side):

1. DescribePackage ``packageName/<name>``; only ResourceNotFoundException leads to
   CreatePackage, any other error is shown as it is.
2. DescribePackageVersion of the patch (sha256 of package.json): already
   REGISTER_COMPLETED or REGISTER_PENDING → nothing to do. The latest patch before ours is
   remembered.
3. Upload the assets and descriptors to ``s3://<Bucket>/<BinaryPrefixLocation>/<uri>`` and
   package.json to ``<ManifestPrefixLocation>/<version>/<patch>.json``, skipping objects that
   exist (:mod:`panorama_cli.cloud.aws.s3_upload`); all packages' files go through one transfer
   manager, in parallel.
4. RegisterPackageVersion (MarkLatest) of the packages whose files are all there.
5. With ``wait``: poll DescribePackageVersion with backoff until REGISTER_COMPLETED (then
   DeregisterPackageVersion of the previous latest patch, best effort) or FAILED.

A package that cannot go (a validation error in its files, a missing asset, a failed
upload, FAILED registration, timeout) is reported in its :class:`PackageResult`; the
others go on. Operation names and fields are the Panorama API's (2019-07-24).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from panorama_cli.cloud.aws import panorama as api
from panorama_cli.cloud.aws.s3_upload import Upload, upload_all
from panorama_cli.cloud.package_plan import PlannedPackage, plan
from panorama_cli.cloud.polling import poll
from panorama_cli.errors import UserError
from panorama_cli.project.project import Project

log = logging.getLogger(__name__)

#: Result statuses besides the API's PackageVersionStatus values.
ALREADY_REGISTERED = "UNCHANGED"
NOT_SENT = "NOT_SENT"
TIMED_OUT = "TIMED_OUT"

#: Statuses that count as success.
OK_STATUSES = frozenset({api.REGISTER_COMPLETED, api.REGISTER_PENDING, ALREADY_REGISTERED})


@dataclass
class PackageResult:
    """The outcome for one package, as the summary table and ``--json`` show it.

    Attributes:
        name, version, patch: the package version registered (patch = 64 hex chars).
        folder: the package folder relative to the project root.
        package_id: Panorama's PackageId (None when it was never reached).
        status: REGISTER_COMPLETED, REGISTER_PENDING (``--no-wait``), UNCHANGED (this patch
            was already registered), FAILED, TIMED_OUT, or NOT_SENT.
        message: why it failed, or what else happened ("" when nothing to say).
        uploaded_bytes: bytes sent to S3 for it.
        uploaded_files / skipped_files: files sent / found already in S3.
        previous_patch: the latest patch before this one, if any.
        deregistered_previous: that patch was deregistered after success.
    """

    name: str
    version: str
    patch: str
    folder: str
    package_id: str | None = None
    status: str = NOT_SENT
    message: str = ""
    uploaded_bytes: int = 0
    uploaded_files: int = 0
    skipped_files: int = 0
    previous_patch: str | None = None
    deregistered_previous: bool = False

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``package-application --json``)."""
        from dataclasses import asdict

        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class Options:
    """How package-application runs.

    Attributes:
        wait: poll until each registration ends (``--wait``, default) or not.
        poll_interval: first wait between polls, seconds; it doubles up to 30 s.
        timeout: longest wait for all registrations together, seconds.
        owner_account: account id passed as OwnerAccount, or None to use each package
            folder's account.
    """

    wait: bool = True
    poll_interval: float = 2.0
    timeout: float = 900.0
    owner_account: str | None = None


Notify = Callable[[str], None]
ProgressFor = Callable[[Upload, int], Callable[[int], None]]


@dataclass
class _Work:
    """A package in flight: the plan, the result, and what the service told us."""

    planned: PlannedPackage
    result: PackageResult
    storage: dict[str, Any] | None = None
    uploads: tuple[Upload, ...] = ()

    def fail(self, status: str, message: str) -> None:
        self.result.status = status
        self.result.message = message


def package_application(
    project: Project,
    session: Any,
    *,
    package_paths: tuple[str, ...] = (),
    options: Options = Options(),
    notify: Notify = lambda _message: None,
    progress_for: ProgressFor | None = None,
) -> list[PackageResult]:
    """Register the project's packages (all, or those in ``package_paths``).

    Args:
        project: the project.
        session: from :func:`panorama_cli.cloud.aws.session.make_session`.
        package_paths: package folders (``--packages-path``); empty = every package.
        options: see :class:`Options`.
        notify: receives one-line progress messages ("created package X", ...).
        progress_for: byte progress of uploads, see
            :func:`panorama_cli.cloud.aws.s3_upload.upload_all`.

    Returns:
        One :class:`PackageResult` per package, sorted by folder.

    Raises:
        UserError: validation errors outside the packages' own files (nothing is sent), or
            an AWS error that is not about one package (no credentials, access denied to
            DescribePackage, throttling beyond the retries, ...).
        KeyboardInterrupt: interrupted; uploads in flight are cancelled and nothing more is
            registered. A re-run picks up where this one stopped.
    """
    planned = plan(project, package_paths)
    panorama = api.client(session)
    work = [_start(p) for p in planned]
    for item in work:
        if item.result.status == NOT_SENT and not item.result.message:
            _prepare(panorama, item, notify)
    _upload(session, [w for w in work if w.uploads], notify, progress_for)
    for item in work:
        if item.uploads and not item.result.message:
            _register(panorama, item, options, notify)
    if options.wait:
        _wait(
            panorama, [w for w in work if w.result.status == api.REGISTER_PENDING], options, notify
        )
    return [w.result for w in work]


def _start(planned: PlannedPackage) -> _Work:
    result = PackageResult(planned.name, planned.version, planned.patch, planned.rel_folder)
    item = _Work(planned, result)
    log.debug(
        "%s %s: patch %s, %d file(s), %d problem(s)",
        planned.name,
        planned.version,
        planned.patch[:12],
        len(planned.files),
        len(planned.problems),
    )
    if planned.problems:
        first = planned.problems[0]
        more = f" (+{len(planned.problems) - 1} more)" if len(planned.problems) > 1 else ""
        item.fail(NOT_SENT, f"{first.file}#{first.pointer}: {first.message}{more}")
    return item


def _prepare(panorama: Any, item: _Work, notify: Notify) -> None:
    """Steps 1-2 and the upload list of step 3."""
    name, version, patch = item.planned.name, item.planned.version, item.planned.patch
    described = api.describe_package(panorama, name)
    if described is None:
        described = api.create_package(panorama, name)
        notify(f"{name}: created package {described['PackageId']}")
    item.result.package_id = package_id = described["PackageId"]
    item.storage = described.get("StorageLocation") or {}

    current = api.describe_package_version(panorama, package_id, version, patch)
    if current is not None and current.get("Status") in (
        api.REGISTER_COMPLETED,
        api.REGISTER_PENDING,
    ):
        item.result.status = ALREADY_REGISTERED
        item.result.message = f"patch already {current['Status']}"
        return
    latest = api.describe_package_version(panorama, package_id, version)
    if latest is not None and latest.get("PatchVersion") != patch:
        item.result.previous_patch = latest.get("PatchVersion")

    missing = [f for f in item.planned.files if not f.path.is_file()]
    if missing:
        item.fail(NOT_SENT, f"missing local asset assets/{missing[0].uri}")
        return
    linked = [f for f in item.planned.files if f.path.is_symlink()]
    if linked:  # never upload what a link in assets/ points at (it may be outside the project)
        item.fail(NOT_SENT, f"assets/{linked[0].uri} is a symlink")
        return
    bucket = item.storage.get("Bucket")
    binaries = str(item.storage.get("BinaryPrefixLocation", "")).strip("/")
    manifests = str(item.storage.get("ManifestPrefixLocation", "")).strip("/")
    if not bucket or not binaries or not manifests:
        raise UserError(f"DescribePackage of {name} returned no usable StorageLocation")
    uploads = [
        Upload(f.path, bucket, f"{binaries}/{f.uri}", f"assets/{f.uri}") for f in item.planned.files
    ]
    uploads.append(
        Upload(
            item.planned.package.manifest_path,
            bucket,
            f"{manifests}/{version}/{patch}.json",
            f"{item.planned.rel_folder}/package.json",
        )
    )
    item.uploads = tuple(uploads)


def _upload(
    session: Any, work: list[_Work], notify: Notify, progress_for: ProgressFor | None
) -> None:
    """Step 3 for all packages at once; failed uploads fail their package."""
    all_uploads = [u for w in work for u in w.uploads]
    if not all_uploads:
        return
    results = {id(r.upload): r for r in upload_all(session, all_uploads, progress_for=progress_for)}
    for item in work:
        for upload in item.uploads:
            outcome = results[id(upload)]
            if outcome.error is not None and not item.result.message:
                item.fail(NOT_SENT, outcome.error.message)
            elif outcome.skipped:
                item.result.skipped_files += 1
            else:
                item.result.uploaded_files += 1
                item.result.uploaded_bytes += outcome.sent
        if item.result.uploaded_files:
            notify(
                f"{item.planned.name}: uploaded {item.result.uploaded_files} file(s), "
                f"{item.result.uploaded_bytes} bytes"
            )


def _register(panorama: Any, item: _Work, options: Options, notify: Notify) -> None:
    """Step 4."""
    owner = options.owner_account or item.planned.package.account
    assert item.result.package_id is not None  # set by _prepare
    api.register_package_version(
        panorama, item.result.package_id, item.planned.version, item.planned.patch, owner
    )
    item.result.status = api.REGISTER_PENDING
    notify(f"{item.planned.name}: registering version {item.planned.version}")


def _wait(panorama: Any, work: list[_Work], options: Options, notify: Notify) -> None:
    """Step 5: poll all pending registrations together until each one ends."""
    import time

    deadline = time.monotonic() + options.timeout
    pending = {id(w): w for w in work}

    def fetch() -> dict[int, str]:
        for key, item in list(pending.items()):
            r = item.result
            assert r.package_id is not None  # set by _prepare
            found = api.describe_package_version(panorama, r.package_id, r.version, r.patch)
            status = (found or {}).get("Status", api.REGISTER_PENDING)
            if status != api.REGISTER_PENDING:
                r.status = status
                if status == api.REGISTER_FAILED:
                    r.message = (found or {}).get("StatusDescription") or "registration failed"
                del pending[key]
                _finished(panorama, item, options, notify)
        return {k: api.REGISTER_PENDING for k in pending}

    def on_wait(state: dict[int, str], seconds: float) -> None:
        names_ = ", ".join(pending[k].planned.name for k in state)
        notify(f"waiting for registration of {names_}; next check in {seconds:.0f} s")

    poll(
        fetch,
        lambda state: not state,
        interval=options.poll_interval,
        timeout=max(0.0, deadline - time.monotonic()),
        on_wait=on_wait,
    )
    for item in pending.values():
        item.fail(TIMED_OUT, f"still REGISTER_PENDING after {options.timeout:.0f} s")


def _finished(panorama: Any, item: _Work, options: Options, notify: Notify) -> None:
    r = item.result
    notify(f"{r.name}: {r.status}" + (f": {r.message}" if r.message else ""))
    if r.status != api.REGISTER_COMPLETED or not r.previous_patch:
        return
    owner = options.owner_account or item.planned.package.account
    try:
        assert r.package_id is not None  # set by _prepare
        api.deregister_package_version(panorama, r.package_id, r.version, r.previous_patch, owner)
        r.deregistered_previous = True
    except UserError as exc:
        notify(f"{r.name}: could not deregister the previous patch: {exc.message}")
