"""The report in a real browser: headless Chromium renders it, with every section and diagram, and no error.

Chromium is driven by its command line (no Selenium needed): ``--dump-dom``
gives the rendered DOM, ``--screenshot`` a PNG, ``--print-to-pdf`` the
printed page, and ``--enable-logging=stderr`` shows console messages as
"CONSOLE" lines. Without a Chromium the tests skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lmprof.cli import main

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        reason = "no headless Chromium here: `apt-get install chromium` (make test does it where it can)"
        warnings.warn(reason)  # shown in pytest's summary even under -q
        pytest.skip(reason)
    return found


def chromium(browser: str, profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run, offline and with a throwaway profile."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


class Dom(HTMLParser):
    """What the rendered page holds: section ids, tables, svgs, hot lines, missing-section lines."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.missing: list[str] = []
        self.tags: dict[str, int] = {}
        self.svg_sources: list[str] = []
        self.hot_rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "section" and a.get("id"):
            self.sections.append(str(a["id"]))
        if a.get("data-missing"):
            self.missing.append(str(a["data-missing"]))
        if tag == "svg" and a.get("data-source"):
            self.svg_sources.append(str(a["data-source"]))
        if tag == "tr" and a.get("data-hot"):
            self.hot_rows += 1


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, instrumented_run: Path) -> Path:
    """report.html of a real tiny profile run (phases, line profile, trace) with a BPTT graph in its folder."""
    import shutil

    from lmprof.views.files import write_report

    folder = tmp_path_factory.mktemp("browser") / "run"
    shutil.copytree(instrumented_run, folder)  # a copy: this test adds bptt.svg to the folder
    # bptt.svg as `lmprof diagram bptt` draws it; the flow chart the report draws itself from the phases
    assert main(["diagram", "bptt", "--out", str(folder)]) == 0
    return write_report(folder)


def test_report_renders_in_chromium(browser: str, report: Path, tmp_path: Path) -> None:
    done = chromium(browser, tmp_path / "profile", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Dom()
    dom.feed(done.stdout)
    assert dom.sections == ["config", "metrics", "phases", "lines", "ops", "flow", "bptt"]
    assert dom.missing == []
    assert dom.svg_sources == ["flow", "bptt"]  # both diagrams, inline
    assert dom.tags.get("table", 0) >= 7  # config, environment, epochs, parts, phases, train's lines, operators
    assert dom.hot_rows == 3
    assert console_lines(done.stderr) == []


def test_console_errors_would_be_caught(browser: str, tmp_path: Path) -> None:
    """The console check above can fail: a page with a script error shows up as a CONSOLE line."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><title>x</title><script>undefinedFunction()</script>")
    done = chromium(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert any("undefinedFunction" in line for line in console_lines(done.stderr))


def test_screenshots_wide_and_narrow(browser: str, report: Path, tmp_path: Path) -> None:
    from PIL import Image

    for name, size in (("wide", "1280,2000"), ("narrow", "420,2000")):
        shot = tmp_path / f"report-{name}.png"
        done = chromium(browser, tmp_path / f"profile-{name}", f"--screenshot={shot}", f"--window-size={size}",
                        report.as_uri())
        assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
        image = Image.open(shot).convert("L")
        assert image.size == tuple(int(v) for v in size.split(","))
        lo, hi = image.getextrema()
        assert hi - lo > 100  # text on a background, not a blank page


def test_report_prints(browser: str, report: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    done = chromium(browser, tmp_path / "profile", f"--print-to-pdf={pdf}", "--no-pdf-header-footer", report.as_uri())
    assert done.returncode == 0 and pdf.is_file(), done.stderr[-2000:]
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert data.startswith(b"%PDF") and pages >= 2  # the line table runs over more than one page
