"""`snakemake --report` after a run, opened in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from snakemake_runner import TEST_CONFIG, printed, snakemake

pytestmark = pytest.mark.workflow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(run, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    result = snakemake(run, "--configfile", str(TEST_CONFIG), "--report", str(path), timeout=300)
    assert result.returncode == 0, printed(result)[-3000:]
    return path


def chromium(*args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_report_is_self_contained_and_lists_every_figure(report):
    html = report.read_text()
    assert len(html) > 100_000
    for figure in ("e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"):
        assert f"{figure}.png" in html
    assert "summary.md" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The report is a JavaScript app: the rendered DOM (not the source) must show the study and its results.
    assert "steerid tests whether activation steering vectors" in dom.stdout
    assert "Figures" in dom.stdout
    screenshot = tmp_path / "report.png"
    shot = chromium(f"--screenshot={screenshot}", "--window-size=1280,900", report.as_uri())
    assert shot.returncode == 0 and screenshot.stat().st_size > 20_000
