"""The rig's drivers against the hostile device: time and peak memory per attack.

    .venv/bin/rig sim up && .venv/bin/python benchmarks/hostile.py [--json]

Brings up cam-hostile (rig/sim/hostile.py) on the simulated bench's bridge, then for each case
runs, in a fresh process, the drivers that meet that attack on a bench (the MJPEG grabber or the
RTSP client or the TLS client-certificate probe or the SSH driver, then the protocol probe and the
login-service naming; over UDP the SNMP community check and the UDP probe) and prints what they said, the seconds, and the process's peak RSS (from
``wait4``). The baseline, in the same run, is the same process with the same protocol's drivers against a
closed port of the same device: the figure an attack adds is the difference. The table in docs/untrusted-input.md comes
from this script. Exits 1 if a case raised, printed a raw escape, or peaked over --limit-mib.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, os, sys
sys.path.insert(0, {root!r})
host, port, proto = {host!r}, {port}, {proto!r}
said = []
try:
    if proto == "http":
        from drivers.httpauth import Credentials
        from drivers.stream import grab_frames
        g = grab_frames(f"http://{{host}}:{{port}}/stream.mjpg", 3.0, max_frames=5, connect_timeout=3.0, auth=Credentials("admin", "x"))
        said.append(f"grab: {{len(g.frames)}} frames, {{g.error or g.status}}")
    elif proto == "rtsp":
        from drivers.httpauth import Credentials
        from drivers.rtsp import request
        a = request(f"rtsp://{{host}}:{{port}}/main", "DESCRIBE", Credentials("admin", "x"), timeout=3.0)
        said.append(f"rtsp: {{a.status}} {{a.error or ''}}")
    elif proto == "tls":
        from drivers.tlsprobe import client_auth
        r = client_auth(host, port, 3.0, None)
        said.append(f"tls: {{r.no_certificate}}")
    elif proto == "ssh":
        os.environ["PRIVRIG_BENCH_PW"] = "x"
        from drivers.errors import DeviceError
        from drivers.ssh import SshDriver
        from rig.config import SshTransport
        try:
            SshDriver(SshTransport(host=host, port=port, user="root", password_env="PRIVRIG_BENCH_PW", host_key="SHA256:" + "A" * 43,
                                   connect_timeout_s=5), device="cam-hostile").connect()
        except DeviceError as exc:
            said.append("ssh: " + exc.reason.split(": ", 1)[-1])
    elif proto.startswith("shell"):
        from drivers.errors import DeviceError
        from drivers.ssh import SshDriver
        from drivers.storage import DeviceStorage
        from rig.config import SshTransport
        from rig.sim import hostile_ssh
        drv = SshDriver(SshTransport(host=host, port=port, user="root", key_file=hostile_ssh.STATE / "id_ed25519",
                                     host_key=hostile_ssh.host_key_line(), connect_timeout_s=5, command_timeout_s=20), device="cam-hostile")
        try:
            with drv:
                if proto == "shell-true":
                    r = drv.run("true")
                    said.append(f"ssh: exit {{r.exit_status}}")
                elif port == 22:
                    st = DeviceStorage(drv, timeout_s=8, max_files=20_000)
                    for roots in (["/data/names"], ["/data/many"]):
                        try:
                            l = st.snapshot(roots)
                            said.append(f"{{roots[0]}}: {{len(l.files)}} files{{' (cut)' if l.truncated else ''}}")
                        except DeviceError as exc:
                            said.append(f"{{roots[0]}}: {{exc.reason[:60]}}")
                elif port == 2213:
                    l = DeviceStorage(drv, timeout_s=20).snapshot(["/data"])
                    said.append(f"listing: {{len(l.files)}} files{{' (cut)' if l.truncated else ''}}")
                else:
                    r = drv.run("cat /etc/device-info", max_output=1 << 20)
                    said.append(f"ssh: exit {{r.exit_status}}, {{len(r.stdout)}} bytes kept{{' (cut)' if r.truncated else ''}}")
        except DeviceError as exc:
            said.append("ssh: " + exc.reason.split(": ", 1)[-1][:80])
        print(json.dumps({{"ok": True, "said": said}}))
        sys.exit(0)
    if proto == "udp":
        from drivers.probes import probe_udp, snmp_communities
        c, pr = snmp_communities(host, port)
        said.append(f"snmp: {{', '.join(c) or 'no community'}} ({{pr.detail.get('unparsed_replies', 0)}} unparsed)")
        said.append(f"probe: {{probe_udp(host, port).summary}}")
        print(json.dumps({{"ok": True, "said": said}}))
        sys.exit(0)
    from drivers.probes import identify_login_service, probe_tcp
    p = probe_tcp(host, port, timeout=1.5)
    said.append(f"probe: {{p.service}} {{p.summary}}")
    said.append("login: " + identify_login_service(host, port, timeout=2.0).note)
    print(json.dumps({{"ok": True, "said": said}}))
except Exception as exc:
    print(json.dumps({{"ok": False, "said": said + [f"raised {{type(exc).__name__}}: {{exc}}"]}}))
"""


def run_case(host: str, port: int, proto: str) -> dict:
    """One case in a fresh process: what the drivers for ``proto`` said, seconds, peak RSS in MiB."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), host=host, port=port, proto=proto)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    out = b""
    assert proc.stdout is not None
    for _ in range(100_000):
        chunk = proc.stdout.read(65536)
        if not chunk:
            break
        out += chunk[: max(0, (1 << 20) - len(out))]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = status
    took = time.monotonic() - t0
    try:
        doc = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        doc = {"ok": False, "said": [f"no result (exit status {status})"]}
    raw = any(c in json.dumps(doc) for c in ("\\u001b", "\\u0000", "\\u0007"))
    return {"port": port, "ok": doc["ok"] and not raw, "said": doc["said"], "s": round(took, 1), "peak_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> int:
    from rig.sim.hostile import CASES, HostileDevice

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--limit-mib", type=float, default=256.0, help="peak RSS a case may reach")
    args = ap.parse_args()
    from rig.sim.hostile_ssh import SHELL_CASES
    from rig.sim.hostile_udp import UDP_CASES

    dev = HostileDevice()
    host = dev.up(ssh=True)
    try:
        # per protocol: the same drivers (and their imports: OpenCV for HTTP) against a closed port, no attack;
        # for the shell cases, one `true` over the device's SSH
        base = {proto: run_case(host, 9, proto) for proto in sorted({c.proto for c in CASES.values()})}
        base["shell"] = run_case(host, 22, "shell-true")
        rows = [(c.name, c.proto, run_case(host, p, c.proto)) for p, c in CASES.items()]
        rows += [(c.name, "shell", run_case(host, p, "shell")) for p, c in SHELL_CASES.items()]
        base["udp"] = run_case(host, 9, "udp")
        rows += [(c.name, "udp", run_case(host, p, "udp")) for p, c in UDP_CASES.items()]
    finally:
        dev.down()
    if args.json:
        print(json.dumps({"baseline": base, "cases": {n: r for n, _, r in rows}}, indent=2))
    else:
        print(f"{'case':28} {'s':>6} {'peak MiB':>9} {'+ base':>7}  outcome")
        for proto, b in base.items():
            print(f"{'baseline ' + proto + (' (true)' if proto == 'shell' else ' (closed port)'):28} {b['s']:>6} {b['peak_mib']:>9} {0:>7}  {'; '.join(b['said'])[:90]}")
        for name, proto, r in rows:
            print(f"{name:28} {r['s']:>6} {r['peak_mib']:>9} {r['peak_mib'] - base[proto]['peak_mib']:>7.1f}  "
                  f"{'' if r['ok'] else 'FAILED: '}{'; '.join(r['said'])[:110]}")
    bad = [n for n, _, r in rows if not r["ok"] or r["peak_mib"] > args.limit_mib]
    if bad:
        print(f"failed: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
