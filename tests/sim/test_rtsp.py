"""The simulated RTSP output's launch line: only the camera app's loopback feed goes in."""

from __future__ import annotations

import pytest

from rig.sim.rtsp import pipeline


def test_pipeline_packetises_the_loopback_mjpeg_feed() -> None:
    line = pipeline("http://127.0.0.1:8080/stream.mjpg")
    assert "location=http://127.0.0.1:8080/stream.mjpg" in line and "rtpjpegpay name=pay0" in line


@pytest.mark.parametrize("source", ["http://198.18.0.1:80/x", "http://127.0.0.1:8080/a ! filesink location=/etc/passwd", "file:///dev/zero"])
def test_pipeline_refuses_anything_else(source: str) -> None:
    with pytest.raises(ValueError):
        pipeline(source)
