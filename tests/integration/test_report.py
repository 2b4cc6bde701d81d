"""report.html of a real run, rendered by headless Chromium (Debian's chromium) and looked at."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import need

FAIL_PINK, PASS_GREEN, NOT_TESTED_GREY, MANUAL_BLUE = (0xF7, 0xD4, 0xD4), (0xD9, 0xF2, 0xD9), (0xEE, 0xEE, 0xEE), (0xDD, 0xE6, 0xF7)  # matrix cells (RGB)


def chromium(*args: str, home: Path) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("chromium")
    need(exe is not None, "Debian's chromium (scripts/setup installs it)")
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", f"--user-data-dir={home}", *args],
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def report(run_all) -> Path:
    """report.html of the whole simulated bench's run."""
    return run_all[1] / "report.html"


def test_report_is_self_contained_with_the_matrix_and_frames(report: Path) -> None:
    html = report.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from anywhere
    matrix = html[html.index("id=matrix"):html.index("</table>", html.index("id=matrix"))]
    row = matrix[matrix.index("6.2.1 g"):]
    # devices in config order: compliant, violating, debug, boot (no camera), secure passes, leaky fails
    assert re.match(r"6\.2\.1 g</b>.*?<td>camera-shutter</td>" + "<td class=not-tested>not tested</td>" * 4 + "<td class=pass>pass</td><td class=fail>fail</td>",
                    row, re.S)
    assert "6.2.1 c</b>" in matrix and "<td class=manual>manual</td>" in matrix  # physical tamper protection: a technician's call
    assert "5.6-1, 5.6-4" in matrix and "2.3.2" in matrix  # EN 303 645 / TS 103 701 and ISVS equivalents
    frames = re.findall(r'<img alt="devices/cam-leaky/camera-shutter/([^"]+)" src="data:image/png;base64,', html)
    assert {"main-open.png", "main-closed.png", "rtsp-closed.png", "observation-closed.png"} <= set(frames)


HEIGHT = 48000


def test_chromium_renders_matrix_and_frames(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    # the whole bench's report is ~30,000 px tall: one window shows all of it, as a person scrolls through it
    res = chromium(f"--screenshot={shot}", f"--window-size=1400,{HEIGHT}", "--hide-scrollbars", report.as_uri(), home=tmp_path / "home")
    assert shot.exists(), res.stderr.decode(errors="replace")[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (HEIGHT, 1400)
    top = img[:2400, :, ::-1].reshape(-1, 3)  # the page as it opens: the conformance matrix
    for colour in (FAIL_PINK, PASS_GREEN, NOT_TESTED_GREY, MANUAL_BLUE):
        assert int(np.all(np.abs(top.astype(int) - colour) <= 2, axis=1).sum()) > 2000, colour  # matrix cells painted
    bands = [len(np.unique(img[y:y + 2000, :, ::-1].reshape(-1, 3)[::7] // 8, axis=0)) for y in range(0, HEIGHT, 2000)]
    assert max(bands) > 2000, bands  # photographs (the embedded frames) rendered, not just flat table colours
    assert bands[0] < 1000, bands  # while the matrix at the top is flat colour and text
    dom = chromium("--dump-dom", report.as_uri(), home=tmp_path / "home2").stdout.decode(errors="replace")
    assert "id=\"matrix\"" in dom and "<script" not in dom
