"""Small simulated benches for the lab tests: each its own subnet, bridge and state folder, one
or two devices taken from the shipped bench config (renamed and re-addressed)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import SIM_CONFIG, sim_config_text


def bench_config(folder: Path, name: str, octet: int, devices: dict[str, str]) -> Path:
    """A bench config ``name`` on 198.18.<octet>.0/24 (bridge ``rigl<octet>``, state in
    /run/privrig/lab-<octet>) with ``devices`` (new name -> shipped device it copies)."""
    raw = yaml.safe_load(sim_config_text())
    state = f"/run/privrig/lab-{octet}"
    out = {"version": 1, "bench": {"name": name, "evidence_dir": str(folder / f"{name}-evidence")},
           "simulator": {"subnet": f"198.18.{octet}.0/24", "bridge": f"rigl{octet}", "state_dir": state, "cloud": f"198.19.{octet}.50",
                         "devices": {}},
           "devices": {}}
    for i, (new, old) in enumerate(devices.items()):
        dev = yaml.safe_load(yaml.safe_dump(raw["devices"][old]).replace("/run/privrig/sim", state).replace(f"/{old}/", f"/{new}/"))
        addr = f"198.18.{octet}.{10 + i}"
        old_addr = str(raw["devices"][old]["network"]["address"])
        dev = yaml.safe_load(yaml.safe_dump(dev).replace(old_addr, addr))
        dev["network"]["capture_interface"] = f"rigl{octet}"
        dev.pop("usb", None)  # the simulated USB bus is the shipped bench's
        out["devices"][new] = dev
        out["simulator"]["devices"][new] = raw["simulator"]["devices"][old]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(out, sort_keys=False))
    return path


assert SIM_CONFIG.exists()
