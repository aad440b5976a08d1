"""Planner app latency in a real browser: first paint and edit-to-update of the Plan page.

Starts ``streamlit run app/streamlit_app.py`` on loopback, drives the system Chromium with
Playwright, and times (a) from page load until the ε metric is shown, (b) from editing the
epochs field until the metric shows the new plan's ε, for plans of 10, 30 and 100 epochs
(each edit is a new plan, so nothing is cached). Prints a Markdown table.

    python bench/app.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(port: int) -> subprocess.Popen:
    env = dict(os.environ, DPPLAN_HOME=tempfile.mkdtemp())
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
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("streamlit did not start within 90 s")


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    import dpplan

    chromium = shutil.which("chromium")
    if chromium is None:
        print("error: needs the system Chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    port = _free_port()
    server = _start_server(port)
    rows = []
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=chromium,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            first = []
            for repeat in range(args.repeats):
                sigma = 1.0 + 0.01 * repeat  # a new plan each time: nothing cached
                started = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/?noise_multiplier={sigma}&epochs=10")
                page.get_by_test_id("stMetricValue").first.wait_for(timeout=120_000)
                first.append(time.perf_counter() - started)
            rows.append(("first paint, 10 epochs (ε metric shown)", first))
            epochs_field = page.get_by_role("spinbutton", name="Epochs")
            for epochs in (10, 30, 100):
                timings = []
                for repeat in range(args.repeats):
                    sigma = 1.3 + 0.01 * repeat + epochs * 1e-4
                    page.goto(f"http://127.0.0.1:{port}/?noise_multiplier={sigma}&epochs=2")
                    page.get_by_test_id("stMetricValue").first.wait_for(timeout=120_000)
                    plan = dpplan.TrainingPlan(
                        dataset_size=60000,
                        batch_size=256,
                        noise_multiplier=sigma,
                        epochs=epochs,
                        delta=1e-5,
                    )
                    expected = f"{dpplan.compare(plan).headline_epsilon:.3f}"
                    started = time.perf_counter()
                    epochs_field.fill(str(epochs))
                    epochs_field.press("Enter")
                    page.get_by_test_id("stMetricValue").first.filter(has_text=expected).wait_for(
                        timeout=120_000
                    )
                    timings.append(time.perf_counter() - started)
                rows.append((f"edit → updated ε and curves, {epochs} epochs", timings))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    print(
        f"machine: {platform.platform()}, {cpu}, {os.cpu_count()} cores; "
        f"plan N=60000, B=256, δ=1e-5; {args.repeats} repeats\n"
    )
    print("| measurement | median s | min s | max s | goal | met |")
    print("|---|---|---|---|---|---|")
    for name, values in rows:
        median = statistics.median(values)
        print(
            f"| {name} | {median:.2f} | {min(values):.2f} | {max(values):.2f} | ≤ 1 s | "
            f"{'yes' if median <= 1.0 else 'no'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
