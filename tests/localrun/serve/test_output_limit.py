"""The per-node bound on the console lines that reach serve's own log."""

from __future__ import annotations

from panorama_cli.localrun.serve.output_limit import LineLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _limiter(reports: list[str], clock: Clock) -> LineLimiter:
    return LineLimiter(
        "code_node", reports.append, lines_per_s=10, line_burst=20, bytes_per_s=1000,
        byte_burst=4000, every_s=5.0, clock=clock,
    )  # fmt: skip


def test_a_flood_shows_the_burst_then_the_rate_and_counts_the_rest():
    clock, reports = Clock(), []
    limiter = _limiter(reports, clock)
    shown = 0
    for _ in range(100_000):  # 10 s of 10000 lines per second
        shown += limiter.allow("x" * 10)
        clock.now += 0.0001
    assert 20 <= shown <= 20 + 10 * 10 + 1
    limiter.flush()
    clock.now += 5
    limiter.flush()
    counted = sum(int(r.split("code_node: ")[1].split()[0]) for r in reports)
    assert shown + counted == 100_000
    assert all(r.endswith("(see its console.log)") for r in reports)
    assert len(reports) <= 3  # one per 5 s


def test_long_lines_are_bounded_by_bytes():
    clock, reports = Clock(), []
    limiter = _limiter(reports, clock)
    big = "y" * 3000
    assert limiter.allow(big)
    assert not limiter.allow(big)  # 6000 bytes > the 4000 burst
    clock.now += 3  # 3000 bytes back
    assert limiter.allow(big)


def test_a_quiet_node_shows_everything_and_reports_nothing():
    clock, reports = Clock(), []
    limiter = _limiter(reports, clock)
    for _ in range(1000):
        assert limiter.allow("frame")
        clock.now += 0.2
    limiter.flush()
    assert reports == [] and limiter.hidden == 0
