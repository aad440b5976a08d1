"""Render the HTML report in headless Chromium: a screenshot and a printed PDF come out.

Skipped when no Chromium is installed (``apt-get install chromium`` on Debian). Look at the
screenshot by hand when the layout changes: ``DPPLAN_KEEP_SCREENSHOT=/some/dir``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from report_helpers import chromium_binary

from dpplan.report import to_html

CHROMIUM = chromium_binary()
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-extensions",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def _chromium(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def page_path(run_report_or_plan, tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(to_html(run_report_or_plan), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_report_or_plan(request, plan_report):
    """The smoke run's report when MNIST is there, else the plan report."""
    try:
        store, run = request.getfixturevalue("smoke_run")
    except pytest.skip.Exception:
        return plan_report
    from dpplan.report import build_run_report

    return build_run_report(store, run.id, title="Smoke run <script>alert(1)</script>")


def test_screenshot(page_path, tmp_path):
    png = tmp_path / "report.png"
    done = _chromium(
        f"--screenshot={png}", "--window-size=1200,2400", f"file://{page_path}", tmp_path=tmp_path
    )
    assert png.exists(), done.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a rendered document, not a blank page
    keep = os.environ.get("DPPLAN_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(png, os.path.join(keep, "report.png"))
        shutil.copy(page_path, os.path.join(keep, "report.html"))


def test_prints_to_pdf(page_path, tmp_path):
    pdf = tmp_path / "report.pdf"
    done = _chromium(
        f"--print-to-pdf={pdf}", "--no-pdf-header-footer", f"file://{page_path}", tmp_path=tmp_path
    )
    assert pdf.exists(), done.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 3
