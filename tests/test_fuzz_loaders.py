"""Seeded fuzzing of every file loader (see tests/fuzz_harness.py): mutated valid files must load or fail
with an nnlite error, each case within 10 s and 1 GB of RSS, in a child process under an address-space cap.

The default run mutates each loader's seeds a few hundred times; the ``long`` run does thousands."""

from __future__ import annotations

import pytest

from tests.fuzz_harness import CASE_TIMEOUT_S, RSS_LIMIT_BYTES, Report, drive, fuzz, summary
from tests.fuzz_targets import TARGETS

DEFAULT_CASES = 300
LONG_CASES = 1300  # x 9 loaders: 11,700 mutations


@pytest.fixture(scope="module")
def default_run() -> dict[str, Report]:
    return fuzz(DEFAULT_CASES)


def _check(report: Report, cases: int) -> None:
    assert report.cases == cases
    assert report.ok + report.typed == cases, summary({report.target: report})
    assert not report.problems(), summary({report.target: report})
    assert report.max_s < CASE_TIMEOUT_S
    assert report.max_rss < RSS_LIMIT_BYTES


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutated_files_give_nnlite_errors_only(default_run, target):
    _check(default_run[target], DEFAULT_CASES)


def test_mutations_reach_both_outcomes(default_run):
    """A fuzz whose mutations never load, or never fail, would test nothing."""
    for report in default_run.values():
        assert report.typed > DEFAULT_CASES // 10, report.target
    assert sum(r.ok for r in default_run.values()) > DEFAULT_CASES


def test_harness_reports_untyped_errors_hangs_crashes_and_memory():
    """The harness itself: case 3 raises ValueError, 5 sleeps, 7 kills its worker, 9 allocates 128 MiB
    (over the 96 MiB RSS limit this run uses; the real runs use 1 GiB)."""
    report = Report("_selftest")
    drive("_selftest", 0, 11, report, case_timeout=8, rss_limit=96 << 20)
    assert report.cases == 11
    assert [c for c, *_ in report.untyped] == [3]
    assert [c for c, *_ in report.hangs] == [5]
    assert [c for c, *_ in report.crashes] == [7]
    assert [c for c, *_ in report.over_rss] == [9]
    assert report.typed == 1


@pytest.mark.long
def test_long_fuzz():
    reports = fuzz(LONG_CASES)
    print(summary(reports, verbose=True))
    for report in reports.values():
        _check(report, LONG_CASES)
