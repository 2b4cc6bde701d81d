"""The simulated bench: ``rig sim up|down|status``.

Each simulated device is a network namespace on a bridge in the benchmarking range,
with a busybox root filesystem and real daemons:

* OpenSSH ``sshd`` (key auth only, ``ChrootDirectory`` = the device's root; root's
  shell inside is busybox ``sh`` through ``/etc/netns/<ns>/passwd``, which
  ``ip netns exec`` binds over ``/etc/passwd`` for that namespace only);
* a serial console on a real pty (:mod:`rig.sim.console`);
* on the violating profile: busybox ``telnetd`` handing out a root shell and
  ``gdbserver --multi``.

``up`` refuses a subnet that overlaps an existing route; everything it creates
(namespaces, links, mounts, processes, files) is recorded in ``state.json`` and
removed by ``down``, which also sweeps by name in case the state file was lost.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from rig.config import BenchConfig, DeviceConfig, Identity, LoadedConfig
from rig.sim import net, storage
from rig.sim.net import SimError
from rig.sim.camera import make_pki
from rig.sim.cloud import CLOUD_NAME
from rig.sim.usbgadget import write_gadget

NS_PREFIX = "rig-"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
#: the sshd options every simulated device shares: no forwarding, no banners, no DNS, room for parallel probes
SSHD_QUIET = ("X11Forwarding no", "AllowTcpForwarding no", "PermitTunnel no", "PrintMotd no", "PrintLastLog no", "UseDNS no",
              "MaxStartups 50:30:100")


@dataclass(frozen=True)
class Service:
    kind: str  # see SimBench._service_argv
    port: int
    port2: int | None = None  # openocd: its telnet port beside the TCL port
    options: tuple[str, ...] = ()  # camera: rig.sim.camera arguments


@dataclass(frozen=True)
class Profile:
    name: str
    console: str  # "login" | "shell" | "uboot" (see rig.sim.console)
    services: tuple[Service, ...]
    console_password: str | None = None  # None: a random root password nobody can guess
    ssh_password: str | None = None  # set: sshd also takes root's password (a weak one)
    ssh_open_user: str | None = None  # set: this account has an empty password and sshd lets it in with the none method
    storage: str | None = None  # firmware data and the simapp app (rig.sim.storage): "clean" | "leaky"
    sdcard_mb: int | None = None  # set: /mnt/sdcard is an ext4 card on a loop device, raw at /dev/mmcblk0p1
    #: the web and RTSP accounts (user, password; None: a strong random one drawn at ``up``), written to
    #: DIR/accounts for the camera and the RTSP server (``@accounts`` in a service's options) and each
    #: password to DIR/<user>.pw (0600) for the bench config's ``auth: {password_file: ...}``
    web_accounts: tuple[tuple[str, str | None], ...] = ()
    #: a vendor bootloader (rig.sim.console.BootStub) whose autoboot any key stops at each power-on
    bootloader: bool = False
    #: the genuine firmware images the bench builds for this device's updater: (older, newer) versions
    firmware: tuple[str, str] | None = None


PROFILES: dict[str, Profile] = {
    # its model (the bench's ONNX classifier on onnxruntime, rig.sim.inference) is sealed under a key outside the data
    # roots, takes only models the vendor signed, answers a label and a rounded score, and rate-limits queries
    "compliant": Profile("compliant", "login", (Service("inference", 8090, options=("--signed", "--top1", "--rate", "40")),), storage="clean"),
    "violating": Profile(
        "violating", "shell",
        (Service("telnetd", 23), Service("gdbserver", 2345), Service("snmpd", 161), Service("tftpd", 69),
         Service("httpd", 80), Service("rtsp-open", 554), Service("vsftpd", 21),
         Service("inference", 8090)),  # its model in the clear, loading whatever it is given, answering every score
        ssh_password="root",
        ssh_open_user="admin",
        storage="leaky",
        sdcard_mb=16,
    ),
    # debug services a lab finds on real devices, none on its standard port
    "debug-nonstd": Profile(
        "debug-nonstd",
        "login",  # root/root: a default credential on the console
        (
            Service("telnetd-login", 2323),
            Service("gdbserver", 9999),
            Service("openocd", 5555, port2=4444),  # TCL on ADB's usual port: identify by protocol
            Service("adb-open", 7000),
            Service("adb-auth", 5037),
            Service("jdwp", 8000),
            Service("nc-shell", 2000),
            Service("https-open", 8443),  # a web UI over TLS that serves its snapshot to anyone
        ),
        console_password="root",
    ),
    # a development unit whose console still lets anyone stop autoboot (real U-Boot in qemu)
    "bootloader": Profile("bootloader", "uboot", ()),
    # a camera whose channels are protected: MJPEG over HTTPS (TLS 1.2+, client certificate
    # required), and H.264 pushed to the bench sink under SRTP AEAD_AES_128_GCM; its shutter
    # blacks the sensor out and its output pixelates faces
    # It updates securely (the vendor's Ed25519 signature and no older version, fetched over HTTPS) and its uplink
    # to the cloud verifies the server's certificate
    "stream-secure": Profile("stream-secure", "login", (
        Service("camera", 8443, options=("--https", "8443", "--tls-min", "TLSv1.2", "--mtls", "--push", "srtp", "--shutter", "works", "--deid", "pixelate")),
        Service("updater", 8088, options=("--signed", "--monotonic", "--fetch-https")),
        Service("uplink", 8883, options=("--verify",)),
    ), firmware=("3.0.0", "3.2.0")),
    # a camera that leaks: MJPEG over plain HTTP, an HTTPS server that still takes TLS 1.0, an updater that checks a CRC,
    # an uplink that believes any server,
    # H.264 in clear RTP (ffmpeg) and XOR-"encrypted" JPEG frames over UDP, and an RTSP
    # output without authentication (GStreamer's RTSP server); its shutter command is
    # acknowledged and ignored, and faces go out untouched
    "stream-plain": Profile("stream-plain", "login", (
        Service("camera", 8080, options=("--http", "8080", "--https", "8443", "--tls-min", "TLSv1", "--push", "rtp-h264,xor-udp", "--shutter", "ignored", "--deid", "none")),
        Service("rtsp-camera", 8554, options=("--path", "/main", "--source", "http://127.0.0.1:8080/stream.mjpg")),
        Service("updater", 8088, options=("--fetch-http",)),  # a CRC is all it checks, and it fetches in the clear
        Service("uplink", 8883, options=()),  # verify=False: any server is its cloud
    ), firmware=("1.0.0", "1.1.0")),
    # a mute camera: it accepts every command (stream-start, the shutter) and sends nothing;
    # its HTTPS stream wants Digest credentials the bench config does not have (401). Nothing
    # it does can be observed, so no scenario that needs its media may pass
    # a camera as labs receive them from a shop: its stream over HTTPS and RTSP wants Digest for
    # the account its quick-start guide documents, its web UI is a form login at /, its TLS
    # stack still takes TLS 1.0 and static-RSA CBC suites beside TLS 1.3, and a telnet the
    # vendor never declared listens on 9527 with the root password of its SoC SDK (xc3511); at power-on its
    # bootloader counts down to autoboot and any key stops it at a prompt
    "retail": Profile("retail", "login", (
        Service("camera", 443, options=("--https", "443", "--legacy-tls", "--accounts", "@accounts", "--auth", "digest", "--login-page",
                                        "--internal", "8081", "--shutter", "works", "--deid", "pixelate")),
        Service("rtsp-camera", 554, options=("--path", "/main", "--source", "http://127.0.0.1:8081/stream.mjpg", "--accounts", "@accounts")),
        Service("telnetd-login", 9527),
    ), console_password="xc3511", web_accounts=(("admin", "simcam1234"),), bootloader=True),
    # its compliant twin: a strong password of its own, Digest SHA-256 only, wrong passwords slowed
    # down, modern TLS only (1.2 and 1.3), no telnet
    "retail-secure": Profile("retail-secure", "login", (
        Service("camera", 443, options=("--https", "443", "--tls-min", "TLSv1.2", "--accounts", "@accounts", "--auth", "digest-sha256",
                                        "--throttle", "--login-page", "--shutter", "works", "--deid", "pixelate")),
    ), web_accounts=(("viewer", None),)),
    "mute": Profile("mute", "login", (Service("camera", 8443, options=("--https", "8443", "--tls-min", "TLSv1.2", "--deny", "--shutter", "works",
                                                                        "--deid", "pixelate")),)),
}

#: services whose port ``rig sim up`` waits for before it returns (debug services are left alone:
#: a connect would be a client to a single-shot gdbserver)
READY_KINDS = ("camera", "rtsp-camera", "updater")

def _listening(svc: Service) -> list[int]:
    """The TCP ports ``rig sim up`` waits for on a service of :data:`READY_KINDS` (the camera:
    each of its HTTP and HTTPS ports, which it opens one after the other)."""
    if svc.kind not in READY_KINDS:
        return []
    if svc.kind == "camera":
        opts = list(svc.options)
        return [int(opts[i + 1]) for i, o in enumerate(opts[:-1]) if o in ("--http", "--https")] or [svc.port]
    return [svc.port]


#: Debian's Python, which has the GStreamer bindings (python3-gi) the RTSP output runs on
SYSTEM_PYTHON = "/usr/bin/python3"

REQUIRED_TOOLS = {"sshd": "/usr/sbin/sshd", "ssh-keygen": "ssh-keygen", "busybox": "busybox", "gdbserver": "gdbserver", "ip": "ip", "openssl": "openssl", "openocd": "openocd", "snmpd": "/usr/sbin/snmpd", "tftpd": "/usr/sbin/in.tftpd",
                  "qemu-system-arm": "qemu-system-arm", "mkfs.ext4": "/usr/sbin/mkfs.ext4", "losetup": "/usr/sbin/losetup", "vsftpd": "/usr/sbin/vsftpd", "u-boot-qemu": "/usr/lib/u-boot/qemu_arm/u-boot.bin", "ffmpeg": "ffmpeg"}


def _tool(name: str) -> str:
    path = shutil.which(REQUIRED_TOOLS[name]) or (REQUIRED_TOOLS[name] if os.path.exists(REQUIRED_TOOLS[name]) else None)
    if path is None:
        raise SimError(f"{name} is not installed on this host (scripts/setup installs it)")
    return path


def _gstreamer_python() -> str:
    """Debian's Python with GStreamer's RTSP server bindings; SimError naming the packages otherwise."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL) if os.path.exists(SYSTEM_PYTHON) else None
    if probe is None or probe.returncode != 0:
        raise SimError("GStreamer's RTSP server is not installed for /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0; scripts/setup installs them)")
    return SYSTEM_PYTHON


#: where the bench observation camera serves /<device>.mjpg on the bench address
OBSERVATION_PORT = 9180


def _shutter_default(profile: Profile) -> str | None:
    """The simulated shutter behaviour of a camera profile (None: the profile has no camera)."""
    for svc in profile.services:
        if svc.kind == "camera" and "--shutter" in svc.options:
            return svc.options[svc.options.index("--shutter") + 1]
    return None


def ns_name(device: str) -> str:
    return NS_PREFIX + device


class SimBench:
    """Builds, inspects and removes the simulated bench described by a config."""

    def __init__(self, config: LoadedConfig):
        if config.bench.simulator is None:
            raise SimError(f"{config.path}: no simulator section; this config describes no simulated bench")
        self.config = config
        self.cfg: BenchConfig = config.bench
        self.sim = config.bench.simulator
        self.state_dir = self.sim.state_dir
        self.state_file = self.state_dir / "state.json"

    # -- state ------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.state_dir.parent / (self.state_dir.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SimError(f"another rig sim command holds {lock_path}") from None
            yield

    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_file)

    def is_up(self) -> bool:
        return self.state_file.exists() or any(net.netns_exists(ns_name(d)) for d in self.sim.devices) or net.link_exists(self.sim.bridge)

    # -- up ---------------------------------------------------------------------------
    def up(self, log: Callable[[str], object] = print) -> dict:
        """Build the bench; on any failure tear down what was built and raise :class:`SimError`."""
        if os.geteuid() != 0:
            raise SimError("rig sim up needs root (network namespaces, chroot, mounts)")
        for name in REQUIRED_TOOLS:
            _tool(name)
        if any(svc.kind == "rtsp-camera" for d in self.sim.devices.values() for svc in PROFILES[d.profile].services):
            _gstreamer_python()
        with self._locked():
            if self.is_up():
                raise SimError(f"a simulated bench is already up ({self.state_dir} or namespaces exist); run `rig sim down` first")
            net.check_subnet_free(self.sim.subnet)
            state: dict = {"config": str(self.config.path), "bridge": self.sim.bridge, "subnet": str(self.sim.subnet), "devices": {}, "started_at": time.time()}
            self.state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.state_dir, 0o755)
            for parent in self.state_dir.parents:  # sshd's ChrootDirectory: no group/other-writable path component
                if parent == Path("/"):
                    break
                st = parent.stat()
                if st.st_uid != 0 or st.st_mode & 0o022:
                    raise SimError(f"{parent} must be owned by root and not group/world-writable (sshd ChrootDirectory rule); choose another simulator.state_dir")
            self._save_state(state)
            try:
                self._client_key()
                net.make_bridge(self.sim.bridge, self.sim.bench_address, self.sim.subnet)
                state["bench_pids"] = {}
                if any(PROFILES[d.profile].firmware or any(svc.kind == "uplink" for svc in PROFILES[d.profile].services) for d in self.sim.devices.values()):
                    state["bench_pids"]["cloud"] = self._cloud_up()
                    self._save_state(state)
                self._vendor_models()
                known = []
                for idx, (name, simdev) in enumerate(self.sim.devices.items()):
                    log(f"sim: building {name} ({simdev.profile})")
                    dstate, hostkey_line = self._device_up(idx, name, self.cfg.devices[name], PROFILES[simdev.profile])
                    state["devices"][name] = dstate
                    self._save_state(state)
                    known.append(hostkey_line)
                (self.state_dir / "known_hosts").write_text("\n".join(known) + "\n")
                cams = {n: _shutter_default(PROFILES[d.profile]) for n, d in self.sim.devices.items() if _shutter_default(PROFILES[d.profile])}
                if cams:  # the bench observation camera, on the bench host, looking at every camera device
                    argv = [sys.executable, "-m", "rig.sim.observation", "--listen", f"{self.sim.bench_address}:{OBSERVATION_PORT}",
                            "--state", str(self.state_dir), *[f"{n}={m}" for n, m in cams.items()]]
                    state["bench_pids"]["observation"] = self._spawn(None, argv, self.state_dir / "observation.log")
                    self._save_state(state)
                self._wait_ready(state)
            except BaseException:
                self._save_state(state)
                self._down_locked(log=lambda *_: None)
                raise
            return state

    def _cloud_up(self) -> int:
        """The simulated cameras' cloud on the bench host (rig.sim.cloud): its address on the
        bridge (refused if a route already covers it), its CA and certificates (and the lab's
        forging material: a certificate of that CA for another name, and an expired one), the
        vendor's firmware key and each updater device's genuine images. Returns its pid."""
        import ipaddress as _ip

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.x509.oid import ExtendedKeyUsageOID

        from rig.certs import issue
        from rig.sim import fwimage

        net.check_subnet_free(_ip.IPv4Network(f"{self.sim.cloud}/32"))
        pki = self.state_dir / "cloud"
        ca = issue(pki / "ca-cert.pem", pki / "ca-key.pem", "SimCam cloud CA", ca=True, days=365)
        issue(pki / "cloud-cert.pem", pki / "cloud-key.pem", CLOUD_NAME, issuer=ca, usage=ExtendedKeyUsageOID.SERVER_AUTH, days=365)
        issue(pki / "forge" / "wrong-name-cert.pem", pki / "forge" / "wrong-name-key.pem", "attacker.simcam.example", issuer=ca,
              usage=ExtendedKeyUsageOID.SERVER_AUTH, days=365)
        issue(pki / "forge" / "expired-cert.pem", pki / "forge" / "expired-key.pem", CLOUD_NAME, issuer=ca, usage=ExtendedKeyUsageOID.SERVER_AUTH,
              days=-1)
        fw = self.state_dir / "firmware"
        fw.mkdir(parents=True, exist_ok=True)
        updates = self.state_dir / "updates" / "simcam"
        updates.mkdir(parents=True, exist_ok=True)
        vendor = ed25519.Ed25519PrivateKey.generate()
        (fw / "vendor-pub.pem").write_bytes(vendor.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        for name, simdev in self.sim.devices.items():
            versions = PROFILES[simdev.profile].firmware
            if not versions:
                continue
            for label, version in zip(("older", "genuine"), versions):
                image = fwimage.build(version, (f"SimCam firmware {version} for {name}\n".encode() * 2048), vendor)
                (fw / name).mkdir(exist_ok=True)
                (fw / name / f"{label}.bin").write_bytes(image)
            shutil.copyfile(fw / name / "genuine.bin", updates / f"{name}.bin")
        net.ip("addr", "add", f"{self.sim.cloud}/32", "dev", self.sim.bridge)
        argv = [sys.executable, "-m", "rig.sim.cloud", "--address", str(self.sim.cloud), "--pki", str(pki), "--updates", str(self.state_dir / "updates")]
        pid = self._spawn(None, argv, self.state_dir / "cloud.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # its ports listen before any device starts sending heartbeats
            try:
                import socket

                socket.create_connection((str(self.sim.cloud), 8883), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        return pid

    def _vendor_models(self) -> None:
        """The vendor's genuine model for each device with a model service (``models/<name>/
        detector.onnx``, the bench's ONNX classifier, and its detached Ed25519 signature
        ``detector.onnx.sig``), and the vendor's model-signing key's public half
        (``models/vendor-pub.pem``) the compliant camera checks deployments against."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        from rig.modelfile import reference_model

        names = [n for n, d in self.sim.devices.items() if any(svc.kind == "inference" for svc in PROFILES[d.profile].services)]
        if not names:
            return
        models = self.state_dir / "models"
        models.mkdir(parents=True, exist_ok=True)
        vendor = ed25519.Ed25519PrivateKey.generate()
        (models / "vendor-pub.pem").write_bytes(vendor.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        model = reference_model(seed=7, width=32)
        for name in names:
            (models / name).mkdir(exist_ok=True)
            (models / name / "detector.onnx").write_bytes(model)
            (models / name / "detector.onnx.sig").write_bytes(vendor.sign(model))

    def _client_key(self) -> None:
        key = self.state_dir / "id_ed25519"
        if not key.exists():
            subprocess.run([_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "privrig-sim-bench", "-f", str(key)], check=True, stdin=subprocess.DEVNULL, timeout=30)

    def _device_up(self, idx: int, name: str, dev: DeviceConfig, profile: Profile) -> tuple[dict, str]:
        assert dev.network is not None
        ns = ns_name(name)
        ddir = self.state_dir / name
        root = ddir / "rootfs"
        logs = ddir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        os.chmod(ddir, 0o755)
        dstate: dict = {"ns": ns, "veth": f"{self.sim.bridge}v{idx}", "address": str(dev.network.address), "profile": profile.name, "pids": {}, "mounts": []}
        net.make_device_netns(ns, dstate["veth"], self.sim.bridge, dev.network.address, self.sim.subnet, self.sim.bench_address)
        console_password = build_rootfs(root, name, dev.identity, profile.console_password)
        if profile.sdcard_mb:
            dstate["mounts"].append(self._sdcard(ddir, root, profile.sdcard_mb))
        if profile.storage is not None:
            model_key = None
            if any(svc.kind == "inference" for svc in profile.services):
                model_key = os.urandom(16)  # the compliant camera's sealing key: beside the device, never in its root
                (ddir / "model.key").write_bytes(model_key)
                os.chmod(ddir / "model.key", 0o600)
                (ddir / "inference.ready").unlink(missing_ok=True)
            self._populate_storage(root, profile.storage, model_key)
        (ddir / "console-password").write_text(console_password + "\n")
        os.chmod(ddir / "console-password", 0o600)
        # devpts for telnetd / interactive ssh inside the chroot
        pts = root / "dev" / "pts"
        subprocess.run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", f"privrig-{name}", str(pts)], check=True, timeout=10)
        dstate["mounts"].append(str(pts))
        # per-namespace passwd: root's login shell is the device's busybox sh
        etc_ns = Path("/etc/netns") / ns
        etc_ns.mkdir(parents=True, exist_ok=True)
        passwd = _host_passwd_with_root_shell("/bin/sh")
        if profile.ssh_open_user:  # an account shipped with an empty password (sshd's "none" method lets it in)
            passwd += f"{profile.ssh_open_user}:x:1001:1001:camera admin:/:/bin/sh\n"
        (etc_ns / "passwd").write_text(passwd)
        # the device's resolver knows its cloud by name (the updater fetches https://cloud.simcam.example)
        (etc_ns / "hosts").write_text(f"127.0.0.1 localhost\n{self.sim.cloud} {CLOUD_NAME}\n")
        if profile.ssh_password is not None:  # sshd (UsePAM no) checks root's hash in this shadow
            hashed = subprocess.run([_tool("openssl"), "passwd", "-6", "-stdin"], input=profile.ssh_password, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
            shadow = f"root:{hashed}:19000:0:99999:7:::\n"
            if profile.ssh_open_user:
                shadow += f"{profile.ssh_open_user}::19000:0:99999:7:::\n"
            (etc_ns / "shadow").write_text(shadow)
            os.chmod(etc_ns / "shadow", 0o600)
        dstate["etc_netns"] = str(etc_ns)
        # sshd
        hostkey = ddir / "ssh_host_ed25519_key"
        subprocess.run([_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", f"{name}-hostkey", "-f", str(hostkey)], check=True, stdin=subprocess.DEVNULL, timeout=30)
        shutil.copyfile(self.state_dir / "id_ed25519.pub", ddir / "authorized_keys")
        # readable by every account sshd reads keys as (the public half only; StrictModes wants it unwritable)
        os.chmod(ddir / "authorized_keys", 0o644)
        sshd_cfg = ddir / "sshd_config"
        sshd_cfg.write_text(
            "\n".join(
                [
                    "Port 22",
                    f"ListenAddress {dev.network.address}",
                    f"HostKey {hostkey}",
                    f"PidFile {ddir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {ddir / 'authorized_keys'}",
                    f"PermitRootLogin {'yes' if profile.ssh_password is not None else 'prohibit-password'}",
                    "PubkeyAuthentication yes",
                    f"PasswordAuthentication {'yes' if profile.ssh_password is not None else 'no'}",
                    f"PermitEmptyPasswords {'yes' if profile.ssh_open_user else 'no'}",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes yes",
                    f"ChrootDirectory {root}",
                    *SSHD_QUIET,
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        dstate["pids"]["sshd"] = self._spawn(ns, [_tool("sshd"), "-D", "-e", "-f", str(sshd_cfg)], logs / "sshd.log")
        # serial console
        console_link = ddir / "console"
        dstate["console"] = str(console_link)
        # the device's power relay (rig.sim.console): on, but for the U-Boot board, which stays off until the rig powers it
        relay = ddir / "power"
        relay.write_text("off\n" if profile.console == "uboot" else "on\n")
        dstate["pids"]["console"] = self._spawn(
            ns,
            ["unshare", "--uts", "--", sys.executable, "-m", "rig.sim.console", "--link", str(console_link), "--root", str(root), "--mode", profile.console,
             "--hostname", name, "--power", str(relay), "--netdev", "eth0", "--gateway", str(self.sim.bench_address),  # inside the device's namespace
             *(["--bootloader"] if profile.bootloader else [])],
            logs / "console.log",
        )
        if profile.web_accounts:
            lines = []
            for user, password in profile.web_accounts:
                password = password or secrets.token_urlsafe(18)
                pw = ddir / f"{user}.pw"
                pw.write_text(password + "\n")
                os.chmod(pw, 0o600)
                lines.append(f"{user}:{password}")
            (ddir / "accounts").write_text("\n".join(lines) + "\n")
            os.chmod(ddir / "accounts", 0o600)
        for svc in profile.services:
            argv = [str(ddir / "accounts") if a == "@accounts" else a for a in self._service_argv(svc, root, ddir, name)]
            dstate["pids"][f"{svc.kind}-{svc.port}"] = self._spawn(ns, argv, logs / f"{svc.kind}-{svc.port}.log", supervise=True)
        usb_file = write_gadget(self.state_dir / "usb", name, profile.name, dev.identity.serial or name)
        if usb_file:
            dstate["usb"] = str(usb_file)
        hostkey_line = f"{dev.network.address} " + " ".join((ddir / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        return dstate, hostkey_line

    @staticmethod
    def _sdcard(ddir: Path, root: Path, size_mb: int) -> str:
        """An SD card: an ext4 image on a loop device mounted at ``/mnt/sdcard`` in the device's
        root, its raw block device at ``/dev/mmcblk0p1`` there (what a raw scan reads: a file
        deleted with ``rm`` leaves its blocks). Returns the mount point."""
        img = ddir / "sdcard.img"
        with img.open("wb") as fh:
            fh.truncate(size_mb << 20)
        subprocess.run([_tool("mkfs.ext4"), "-q", "-F", "-L", "SDCARD", str(img)], check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        loop = subprocess.run([_tool("losetup"), "--find", "--show", str(img)], check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        mnt = root / "mnt" / "sdcard"
        subprocess.run(["mount", "-t", "ext4", loop, str(mnt)], check=True, capture_output=True, timeout=30)
        st = os.stat(loop)
        node = root / "dev" / "mmcblk0p1"
        node.unlink(missing_ok=True)
        os.mknod(node, 0o600 | 0o060000, st.st_rdev)
        return str(mnt)

    def _populate_storage(self, root: Path, kind: str, model_key: bytes | None = None) -> None:
        """Firmware data and the simapp app in a device's root (rig.sim.storage), with real
        media: the bench scene as JPEG and PNG, and an ffmpeg H.264 recording."""
        import cv2

        from rig.sim.media import h264_clip, scene

        img = scene()
        cache = self.state_dir / "media"
        cache.mkdir(parents=True, exist_ok=True)
        storage.populate(root, kind, cv2.imencode(".jpg", img)[1].tobytes(), cv2.imencode(".png", img)[1].tobytes(),
                         h264_clip(cache, seconds=1) if kind == "leaky" else None, model_key)

    def _service_argv(self, svc: Service, root: Path, ddir: Path, name: str = "simcam") -> list[str]:
        """The real daemon (or protocol stub) behind one simulated debug service."""
        port = str(svc.port)
        if svc.kind == "updater":  # rig.sim.updater: takes an image over HTTP, checks it as its options say
            fw = self.state_dir / "firmware"
            argv = [sys.executable, "-m", "rig.sim.updater", "--root", str(root), "--port", port]
            if "--signed" in svc.options:
                argv += ["--pubkey", str(fw / "vendor-pub.pem")]
            if "--monotonic" in svc.options:
                argv.append("--monotonic")
            if "--fetch-https" in svc.options:
                argv += ["--fetch", f"https://{CLOUD_NAME}:8443/simcam/{name}.bin", "--ca", str(self.state_dir / "cloud" / "ca-cert.pem")]
            elif "--fetch-http" in svc.options:
                argv += ["--fetch", f"http://{self.sim.cloud}:8080/simcam/{name}.bin"]
            return argv
        if svc.kind == "inference":  # rig.sim.inference: the device's model on onnxruntime, on the namespace's loopback
            argv = [sys.executable, "-m", "rig.sim.inference", "--root", str(root), "--port", port, "--ready", str(ddir / "inference.ready")]
            if "--signed" in svc.options:
                argv += ["--sealed", storage.DECLARED["clean"][1][0], "--key", str(ddir / "model.key"),
                         "--pubkey", str(self.state_dir / "models" / "vendor-pub.pem")]
            else:
                argv += ["--model", storage.DECLARED["leaky"][1][0]]
            if "--top1" in svc.options:
                argv.append("--top1")
            if "--rate" in svc.options:
                argv += ["--rate", svc.options[svc.options.index("--rate") + 1]]
            return argv
        if svc.kind == "uplink":  # rig.sim.uplink: a heartbeat with the device's token to the cloud every second
            token = ddir / "uplink-token"
            if not token.exists():
                token.write_text(secrets.token_hex(12) + "\n")
                os.chmod(token, 0o600)
            verify = ["--ca", str(self.state_dir / "cloud" / "ca-cert.pem")] if "--verify" in svc.options else ["--no-verify"]
            return [sys.executable, "-m", "rig.sim.uplink", "--cloud", f"{self.sim.cloud}:{port}", "--name", CLOUD_NAME, "--device", name,
                    "--token-file", str(token), "--mode-file", str(ddir / "uplink-mode"), *verify]
        if svc.kind == "camera":  # the camera application (rig.sim.camera); PKI made now so the rig's config finds it
            make_pki(ddir / "tls", name)
            import cv2

            from rig.sim.media import scene

            cv2.imwrite(str(ddir / "reference.png"), scene())  # the technician's capture of the unprocessed scene
            return [sys.executable, "-m", "rig.sim.camera", "--root", str(root), "--state", str(ddir), "--name", name, *svc.options]
        if svc.kind == "rtsp-camera":  # GStreamer's RTSP server re-serving the camera app's MJPEG as RTP/JPEG
            return [_gstreamer_python(), "-m", "rig.sim.rtsp", "--port", port, *svc.options]
        if svc.kind == "telnetd":  # root shell, no login
            return ["chroot", str(root), "/bin/busybox", "telnetd", "-F", "-p", port, "-l", "/bin/sh"]
        if svc.kind == "telnetd-login":
            return ["chroot", str(root), "/bin/busybox", "telnetd", "-F", "-p", port, "-l", "/bin/login"]
        if svc.kind == "gdbserver":
            return [_tool("gdbserver"), "--multi", f"0.0.0.0:{port}"]
        if svc.kind == "nc-shell":  # a bind shell / UART-over-TCP bridge with no login
            return ["chroot", str(root), "/bin/busybox", "nc", "-ll", "-p", port, "-e", "/bin/sh"]
        if svc.kind == "openocd":
            return [
                _tool("openocd"), "-c", "adapter driver dummy", "-c", "adapter speed 1000", "-c", "bindto 0.0.0.0",
                "-c", f"tcl_port {port}", "-c", f"telnet_port {svc.port2 or 4444}", "-c", "gdb_port disabled",
                "-c", "jtag newtap chip cpu -irlen 4 -expected-id 0", "-c", "init",
            ]
        if svc.kind == "snmpd":  # net-snmp with the communities devices ship with
            conf = ddir / "snmpd.conf"
            conf.write_text(f"agentAddress udp:0.0.0.0:{port}\nrocommunity public default\nrwcommunity private default\nsysDescr SimCam firmware (simulated)\n")
            return ["env", f"SNMP_PERSISTENT_DIR={ddir / 'snmp'}", _tool("snmpd"), "-f", "-Lo", "-C", "-c", str(conf), "-p", str(ddir / "snmpd.pid")]
        if svc.kind == "tftpd":  # tftpd-hpa serving the device's firmware folder
            (root / "srv" / "tftp").mkdir(parents=True, exist_ok=True)
            return [_tool("tftpd"), "-L", "-s", str(root / "srv" / "tftp"), "-a", f"0.0.0.0:{port}"]
        if svc.kind == "httpd":  # busybox httpd: a world-readable snapshot, /admin behind admin:admin
            www = root / "www"
            (www / "admin").mkdir(parents=True, exist_ok=True)
            (www / "snapshot.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9")
            (www / "index.html").write_text("<html><body>SimCam</body></html>\n")
            (www / "admin" / "index.html").write_text("<html><body>SimCam admin</body></html>\n")
            (root / "etc" / "httpd.conf").write_text("/admin:admin:admin\n")
            return ["chroot", str(root), "/bin/busybox", "httpd", "-f", "-p", port, "-h", "/www", "-c", "/etc/httpd.conf", "-r", "SimCam"]
        if svc.kind == "https-open":  # openssl s_server -WWW: a real TLS server handing out files
            www = ddir / "https-www"
            www.mkdir(parents=True, exist_ok=True)
            (www / "snapshot.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9")
            (www / "index.html").write_text("<html><body>SimCam D1</body></html>\n")
            key, cert = ddir / "https-key.pem", ddir / "https-cert.pem"
            if not cert.exists():
                subprocess.run([_tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=simcam-d1"],
                               check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
            return ["env", "-C", str(www), _tool("openssl"), "s_server", "-quiet", "-accept", port, "-WWW", "-cert", str(cert), "-key", str(key)]
        if svc.kind == "vsftpd":  # anonymous FTP, no delay after a failed login
            (root / "srv" / "ftp").mkdir(parents=True, exist_ok=True)
            Path("/var/run/vsftpd/empty").mkdir(parents=True, exist_ok=True)
            conf = ddir / "vsftpd.conf"
            conf.write_text("\n".join([
                "listen=YES", "listen_ipv6=NO", f"listen_port={port}", "anonymous_enable=YES", f"anon_root={root / 'srv' / 'ftp'}",
                "local_enable=NO", "write_enable=NO", "secure_chroot_dir=/var/run/vsftpd/empty", "background=NO",
                "seccomp_sandbox=NO", "delay_failed_login=0", "",
            ]))
            return [_tool("vsftpd"), str(conf)]
        if svc.kind in ("adb-open", "adb-auth", "jdwp", "rtsp-open"):
            return [sys.executable, "-m", "rig.sim.debugstubs", svc.kind, port]
        raise SimError(f"unknown simulated service {svc.kind}")

    def _spawn(self, ns: str | None, argv: list[str], logfile: Path, supervise: bool = False) -> int:
        """Start ``argv`` inside ``ns`` (None: on the bench host) detached from this process; return its pid.

        With ``supervise`` the daemon is restarted when it exits (rate-limited), as a
        device's init would: single-shot servers such as gdbserver stay reachable.
        """
        if supervise:
            argv = [sys.executable, "-m", "rig.sim.respawn", "--"] + argv
        cmd = ([_tool("ip"), "netns", "exec", ns] if ns else []) + argv
        env = dict(os.environ)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
        with logfile.open("ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env)
        return proc.pid

    def _wait_ready(self, state: dict, timeout: float = 60.0) -> None:
        """Wait (bounded) until each device's console link exists and its sshd and application
        services listen (the camera, its RTSP output, its updater: on a loaded 2-core host they
        take seconds to start, and a scenario must not meet a refused port the device would
        have open)."""
        import socket

        deadline = time.monotonic() + timeout
        pending = {name: [22] + [p for svc in PROFILES[d["profile"]].services for p in _listening(svc)] for name, d in state["devices"].items()}
        while pending and time.monotonic() < deadline:
            for name, ports in list(pending.items()):
                d = state["devices"][name]
                if not os.path.exists(d["console"]):
                    continue
                while ports:
                    try:
                        with socket.create_connection((d["address"], ports[0]), timeout=0.5):
                            pass
                    except OSError:
                        break
                    ports.pop(0)
                if not ports and any(svc.kind == "inference" for svc in PROFILES[d["profile"]].services) \
                        and not (self.state_dir / name / "inference.ready").exists():
                    continue  # its model service listens on the namespace's loopback: it says when its model is loaded
                if not ports:
                    del pending[name]
            time.sleep(0.1)
        if pending:
            logs = ", ".join(str(self.state_dir / n / "logs") for n in pending)
            raise SimError(f"devices not ready within {timeout:g} s: {', '.join(pending)} (see {logs})")

    # -- down -------------------------------------------------------------------------
    def down(self, log: Callable[[str], object] = print) -> list[str]:
        """Remove every namespace, link, mount, process and file the bench made."""
        if os.geteuid() != 0:
            raise SimError("rig sim down needs root")
        with self._locked():
            return self._down_locked(log)

    def _down_locked(self, log: Callable[[str], object]) -> list[str]:
        state = self._load_state()
        removed: list[str] = []
        names = set(self.sim.devices) | set(state.get("devices", {}))
        pids: set[int] = set()
        for name in names:
            ns = ns_name(name)
            if net.netns_exists(ns):
                pids.update(net.netns_pids(ns))
            for pid in state.get("devices", {}).get(name, {}).get("pids", {}).values():
                pids.add(int(pid))
        pids.update(int(p) for p in state.get("bench_pids", {}).values())
        _terminate(pids)
        if pids:
            removed.append(f"{len(pids)} processes")
        # mounts under the state dir, deepest first
        prefix = str(self.state_dir.resolve()) + "/"
        mounts = [m for m in _mountpoints() if m.startswith(prefix)]
        for m in sorted(mounts, key=len, reverse=True):
            r = subprocess.run(["umount", m], capture_output=True, timeout=10)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", m], capture_output=True, timeout=10)
            removed.append(f"mount {m}")
        for loop in _loops_under(prefix):  # the simulated SD cards' loop devices
            subprocess.run([_tool("losetup"), "-d", loop], capture_output=True, timeout=10)
            removed.append(f"loop {loop}")
        for name in sorted(names):
            ns = ns_name(name)
            if net.netns_exists(ns):
                net.ip("netns", "del", ns, check=False)
                removed.append(f"netns {ns}")
            etc_ns = Path("/etc/netns") / ns
            if etc_ns.exists():
                shutil.rmtree(etc_ns, ignore_errors=True)
        veths = [d.get("veth") for d in state.get("devices", {}).values() if d.get("veth")]
        for v in veths:
            if net.link_exists(v):
                net.ip("link", "del", v, check=False)
                removed.append(f"link {v}")
        bridge = state.get("bridge", self.sim.bridge)
        if net.link_exists(bridge):
            net.ip("link", "del", bridge, check=False)
            removed.append(f"bridge {bridge}")
        left = [m for m in _mountpoints() if m.startswith(prefix)]
        if left:
            raise SimError(f"mounts still present, not removing {self.state_dir}: {', '.join(left)}")
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)
            removed.append(str(self.state_dir))
        for r in removed:
            log(f"sim: removed {r}")
        return removed

    # -- status -----------------------------------------------------------------------
    def status(self) -> dict:
        """What is up: per device namespace, processes alive, console link."""
        state = self._load_state()
        out: dict = {"up": bool(state), "state_dir": str(self.state_dir), "bridge": self.sim.bridge, "devices": {}}
        for name, simdev in self.sim.devices.items():
            d = state.get("devices", {}).get(name, {})
            procs = {k: _alive(int(v)) for k, v in d.get("pids", {}).items()}
            out["devices"][name] = {
                "profile": simdev.profile,
                "netns": net.netns_exists(ns_name(name)),
                "address": d.get("address"),
                "console": d.get("console") if d.get("console") and os.path.exists(d["console"]) else None,
                "processes": procs,
            }
        return out


def build_rootfs(root: Path, name: str, identity: Identity, root_password: str | None = None) -> str:
    """A busybox root filesystem for device ``name``; returns the console root password
    (``root_password``, or a random one nobody can guess)."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "dev/pts", "proc", "sys", "root", "tmp", "var/log", "data", "mnt/sdcard", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for d in (root, root / "etc", root / "bin", root / "dev"):
        os.chmod(d, 0o755)
    os.chmod(root / "tmp", 0o1777)
    busybox = next((p for p in BUSYBOX_CANDIDATES if os.path.exists(p)), None) or _tool("busybox")
    shutil.copy2(busybox, root / "bin" / "busybox")
    subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s"], check=True, timeout=30, stdin=subprocess.DEVNULL)
    for node, major, minor in (("null", 1, 3), ("zero", 1, 5), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)):
        p = root / "dev" / node
        if not p.exists():
            os.mknod(p, 0o666 | 0o020000, os.makedev(major, minor))
            os.chmod(p, 0o666)
    ptmx = root / "dev" / "ptmx"
    if not ptmx.is_symlink():
        ptmx.symlink_to("pts/ptmx")
    password = root_password if root_password is not None else os.urandom(12).hex()
    proc = subprocess.run([_tool("openssl"), "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True, timeout=10)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "etc" / "shadow").write_text(f"root:{proc.stdout.strip()}:19000:0:99999:7:::\n")
    os.chmod(root / "etc" / "shadow", 0o600)
    (root / "etc" / "hostname").write_text(name + "\n")
    ident = identity
    (root / "etc" / "device-info").write_text(f"model={ident.model or 'SimCam'}\nserial={ident.serial or name}\nfirmware={ident.firmware or '0.0.0'}\n")
    return password


def _loops_under(prefix: str) -> list[str]:
    """Loop devices whose backing file lies under ``prefix`` (``losetup --list``)."""
    try:
        out = subprocess.run(["losetup", "--list", "--noheadings", "--raw", "-O", "NAME,BACK-FILE"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    loops = []
    for line in out.splitlines():
        name, _, back = line.partition(" ")
        if back.replace(" (deleted)", "").startswith(prefix):
            loops.append(name)
    return loops


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def _terminate(pids: set[int], grace_s: float = 3.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)


def _mountpoints() -> list[str]:
    out = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) > 1:
                out.append(parts[1].replace("\\040", " "))
    return out


def _host_passwd_with_root_shell(shell: str) -> str:
    lines = []
    for line in Path("/etc/passwd").read_text().splitlines():
        f = line.split(":")
        if len(f) == 7 and f[0] == "root":
            f[6] = shell
            line = ":".join(f)
        lines.append(line)
    return "\n".join(lines) + "\n"
