"""End to end in a real browser: `streamlit run` on loopback, driven by Playwright + Chromium.

Uses the system Chromium (Debian package ``chromium``); Playwright never downloads a
browser. Screenshots of every page land in ``test-artifacts/e2e/``. Skips, saying why, when
Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import dpplan

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = ["Plan", "Solve", "Train", "Compare", "Runs", "Frontier", "Report"]

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no system Chromium (apt-get install chromium)"
)


def _store_example_runs(home: Path) -> None:
    """Stored runs for the Compare, Runs and Report pages to show (stand-in records: ε is
    dpplan's for the plan, accuracies are made up; the trainer has its own tests)."""
    from dpplan.store import EpochRecord, RunStore

    store = RunStore(home)
    plan = dpplan.TrainingPlan(
        dataset_size=55000, batch_size=512, noise_multiplier=1.0, epochs=4, delta=1e-5
    )
    curve = dpplan.epsilon_curve(plan, method="rdp").epsilons
    for kind, key, lr, base in (("one_cycle", "max_lr", 4.0, 0.90), ("plateau", "lr", 0.5, 0.85)):
        for seed in (0, 1):
            run_id = store.create_run(
                plan=plan,
                schedule={"kind": kind, key: lr},
                options={"seed": seed},
                device="cpu",
                seed=seed,
                private=True,
                versions={},
                group_id="example",
            )
            for epoch in range(1, 5):
                accuracy = base + 0.015 * epoch + 0.004 * seed
                store.record_epoch(
                    run_id,
                    EpochRecord(
                        epoch=epoch,
                        steps=plan.steps_after(epoch),
                        epsilon=curve[epoch - 1],
                        epsilon_rdp=curve[epoch - 1],
                        epsilon_opacus=curve[epoch - 1],
                        train_loss=0.5 / epoch,
                        validation_loss=0.4 / epoch,
                        validation_accuracy=accuracy,
                        test_accuracy=accuracy,
                        lr=lr / epoch,
                        seconds=20.0,
                    ),
                )
            store.finish_run(run_id, status="finished")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    home = tmp_path_factory.mktemp("home")
    _store_example_runs(home)
    env = dict(os.environ, DPPLAN_HOME=str(home), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app" / "streamlit_app.py"),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
            "--client.toolbarMode",
            "minimal",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                pytest.fail(f"streamlit did not start: {output[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def page(server):
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


def test_plan_in_the_browser_shows_the_api_epsilon(server, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    query = "dataset_size=60000&batch_size=512&noise_multiplier=1.2&epochs=4&delta=1e-05"
    page.goto(f"{server}/?{query}", timeout=60_000)
    metric = page.get_by_test_id("stMetricValue").first
    metric.wait_for(timeout=90_000)
    plan = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=512, noise_multiplier=1.2, epochs=4, delta=1e-5
    )
    expected = f"{dpplan.compare(plan).headline_epsilon:.3f}"
    # No number is shown as the headline before every method is in.
    assert metric.inner_text().strip() in ("pending…", expected)
    metric.filter(has_text=expected).wait_for(timeout=90_000)
    page.wait_for_timeout(1500)  # let the chart draw
    page.screenshot(path=str(ARTIFACTS / "plan.png"), full_page=True)

    # Edit a field: the ε shown follows the API.
    batch = page.get_by_role("spinbutton", name="Expected batch size B")
    batch.fill("1024")
    batch.press("Enter")
    changed = plan.replace(batch_size=1024)
    expected = f"{dpplan.compare(changed).headline_epsilon:.3f}"
    page.get_by_test_id("stMetricValue").first.filter(has_text=expected).wait_for(timeout=90_000)

    # An invalid value shows an error naming the field, not a traceback.
    batch.fill("70000")
    batch.press("Enter")
    page.get_by_text("batch_size=70000 is invalid").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "plan-error.png"), full_page=True)
    batch.fill("512")
    batch.press("Enter")
    page.get_by_test_id("stMetricValue").first.wait_for(timeout=90_000)


@pytest.mark.parametrize("name", PAGES[1:])
def test_every_page_renders_in_the_browser(server, page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True).click()
    page.get_by_role("heading", name=name).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    assert page.get_by_test_id("stException").count() == 0
    page.screenshot(path=str(ARTIFACTS / f"{name.lower()}.png"), full_page=True)
