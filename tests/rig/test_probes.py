"""Probe images: the rendered set varies, and a lab folder that cannot be used is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.vision.probes import ProbeError, from_folder, rendered


def test_the_rendered_probes_are_deterministic_images() -> None:
    a, b = rendered(), rendered()
    assert len(a) == 12 and [p.data for p in a] == [p.data for p in b] and len({p.data for p in a}) == 12
    assert all(p.data.startswith(b"\x89PNG") for p in a) and rendered(2, ".jpg")[0].data[:2] == b"\xff\xd8"


def test_a_lab_folder_that_is_missing_empty_or_holds_no_image_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="model.probes: .*nowhere"):
        from_folder(tmp_path / "nowhere")
    with pytest.raises(ProbeError, match="holds no .png or .jpg"):
        from_folder(tmp_path)
    (tmp_path / "cat.png").write_bytes(b"<html>not an image</html>")
    with pytest.raises(ProbeError, match="cat.png: not an image"):
        from_folder(tmp_path)
    (tmp_path / "cat.png").write_bytes(rendered(1)[0].data)
    assert [p.name for p in from_folder(tmp_path)] == ["cat.png"]
