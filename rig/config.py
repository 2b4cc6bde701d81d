"""Bench configuration: YAML files validated into typed models.

A bench config names *where* each device and its transports are (resources, in
labgrid's sense): SSH endpoint, serial port, network address, camera streams, the
ports the vendor declares open, the privacy level and the named actions the rig may
trigger. Loading either returns a fully validated :class:`BenchConfig` or raises
:class:`ConfigError` whose lines each name file, line and field.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

#: Test hosts of the simulated bench must stay in the benchmarking range (RFC 2544).
SIM_ALLOWED_RANGE = ipaddress.ip_network("198.18.0.0/15")
#: a scenario that runs this long (seconds) is ended as ``error`` unless the config says otherwise
DEFAULT_SCENARIO_TIMEOUT_S = 1800.0

NAME_RE = r"^[a-z0-9][a-z0-9-]{0,30}$"
ENV_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"

#: Actions a scenario may ask for. Custom ones start with ``x-``.
ACTION_NAMES = (
    "identify",
    "shutter-close",
    "shutter-open",
    "stream-start",
    "stream-stop",
    "app-install",
    "app-uninstall",
    "user-create",
    "user-delete",
    "data-create",
    "model-load",
    "power-off",
    "power-on",
    "power-cycle",
    "firmware-apply",
    "update-check",
    "model-deploy",
    "infer",
)
#: Placeholders an action command may carry.
ACTION_PLACEHOLDERS = {"token", "sink_host", "sink_port", "model", "image", "signature"}
#: The placeholders each known action is given when a scenario triggers it (custom ``x-``
#: actions and the others get none): a placeholder nobody fills is refused up front.
ACTION_GIVEN = {
    "stream-start": {"sink_host", "sink_port"},
    "app-install": {"token"}, "user-create": {"token"}, "data-create": {"token"},
    "user-delete": {"token"}, "app-uninstall": {"token"},
    "model-load": {"model"},
    "firmware-apply": {"image", "signature"},
    "model-deploy": {"model", "signature"},
    "infer": {"image"},
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortSpec(_Model):
    """One port the vendor declares open, e.g. ``22/tcp``."""

    port: int = Field(ge=1, le=65535)
    proto: Literal["tcp", "udp"] = "tcp"
    service: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_short(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"port": value}
        if isinstance(value, str):
            m = re.fullmatch(r"\s*(\d{1,5})\s*(?:/\s*(tcp|udp))?\s*", value)
            if not m:
                raise ValueError(f"port {value!r} is not of the form 22 or 22/tcp or 161/udp")
            return {"port": int(m.group(1)), "proto": m.group(2) or "tcp"}
        return value

    def __str__(self) -> str:
        return f"{self.port}/{self.proto}"


class Identity(_Model):
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None


class SshTransport(_Model):
    """Where the device's SSH server is and how the rig authenticates to it.

    The host key is always pinned: either ``host_key`` (``ssh-ed25519 AAAA…`` or a
    ``SHA256:…`` fingerprint) or a ``known_hosts`` file. A password is never written in
    the config; ``password_env`` names the environment variable that holds it.
    """

    host: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    key_file: Path | None = None
    password_env: Annotated[str, Field(pattern=ENV_RE)] | None = None
    host_key: str | None = None
    known_hosts: Path | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    command_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    keepalive_s: int = Field(default=15, ge=0, le=600)

    @field_validator("host_key")
    @classmethod
    def _host_key_form(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}=?", value):
            return value
        parts = value.split()
        if len(parts) >= 2 and parts[0].startswith(("ssh-", "ecdsa-")):
            return value
        raise ValueError("host_key must be 'ssh-ed25519 AAAA…' (a public key line) or 'SHA256:…' (a fingerprint)")

    @model_validator(mode="after")
    def _auth_and_pin(self) -> "SshTransport":
        if self.key_file is None and self.password_env is None:
            raise ValueError("give key_file or password_env: the rig needs a way to authenticate")
        if self.host_key is None and self.known_hosts is None:
            raise ValueError("pin the device's host key with host_key or known_hosts; the rig never trusts an unknown key")
        return self


class ConsolePrompts(_Model):
    """Regular expressions that recognise what a console shows (matched at the end of output)."""

    shell: str = r"(?:^|\n)[^\n]{0,80}[#$] ?$"
    login: str = r"(?i)login: ?$"
    password: str = r"(?i)password: ?$"
    bootloader: str = r"(?i)(?:hit any key to stop autoboot|autoboot in \d|\n(?:=>|U-Boot>) ?$)"

    @field_validator("shell", "login", "password", "bootloader")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if len(value) > 500:
            raise ValueError("a prompt pattern is at most 500 characters")
        try:
            re.compile(value, re.MULTILINE)  # as the serial driver compiles it
        except (re.error, OverflowError, RecursionError) as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if re.search(r"\{\s*\d{5,}", value):
            raise ValueError("a repetition count above 9999 is not a prompt (it would hold the console buffer)")
        return value


class SerialTransport(_Model):
    """A serial console: a device path (``/dev/ttyUSB0``) or a pyserial URL."""

    port: str = Field(min_length=1)
    baud: int = Field(default=115200, gt=0, le=4_000_000)
    prompts: ConsolePrompts = ConsolePrompts()
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    user: str | None = None
    password_env: Annotated[str, Field(pattern=ENV_RE)] | None = None


class UsbTransport(_Model):
    """Where the device's USB port is: a bus (``libusb`` or ``sim:DIR``) and how to pick it."""

    bus: str = "libusb"
    serial: str | None = None
    vendor: Annotated[int, Field(ge=0, le=0xFFFF)] | None = None
    product: Annotated[int, Field(ge=0, le=0xFFFF)] | None = None

    @model_validator(mode="after")
    def _selector(self) -> "UsbTransport":
        if not (self.bus == "libusb" or self.bus.startswith("sim:")):
            raise ValueError("bus is libusb (real hardware) or sim:DIR (the simulated bench)")
        if self.serial is None and self.vendor is None:
            raise ValueError("name the device by serial (iSerialNumber) or vendor[/product] id")
        return self


class TlsClient(_Model):
    """How the rig authenticates to the device's TLS services, and which demand it."""

    client_cert: Path | None = None  # PEM, issued by the device's CA
    client_key: Path | None = None
    mutual_auth: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=list)  # ports that must refuse clients without a valid certificate

    @model_validator(mode="after")
    def _pair(self) -> "TlsClient":
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("give client_cert and client_key together")
        return self


class NetworkTransport(_Model):
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    capture_interface: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:@-]{1,15}$")] | None = None
    #: where the rig's stream sink listens (default: the capture interface's address)
    sink_address: ipaddress.IPv4Address | None = None
    tls: TlsClient | None = None

    @property
    def client_certificate(self) -> tuple[Path, Path] | None:
        """(certificate, key) the rig presents to the device's TLS services, if configured."""
        if self.tls is None or self.tls.client_cert is None or self.tls.client_key is None:
            return None
        return self.tls.client_cert, self.tls.client_key
    auth_paths: list[Annotated[str, Field(pattern=r"^/")]] = Field(default_factory=list)  # web paths that must demand login
    open_ports: list[
        Annotated[
            PortSpec,
            WithJsonSchema(
                {
                    "anyOf": [
                        {"type": "integer", "minimum": 1, "maximum": 65535},
                        {"type": "string", "pattern": r"^\s*\d{1,5}\s*(/\s*(tcp|udp))?\s*$"},
                        {"type": "object", "properties": {"port": {"type": "integer"}, "proto": {"enum": ["tcp", "udp"]}, "service": {"type": "string"}}, "required": ["port"]},
                    ],
                    "description": "a declared open port: 22, '22/tcp', '161/udp' or {port, proto, service}",
                }
            ),
        ]
    ] = Field(default_factory=list)


def _url_of(pattern: str, message: str) -> AfterValidator:
    """A validator that accepts URLs matching ``pattern`` and names the schemes otherwise."""

    def check(value: str) -> str:
        if not re.match(pattern, value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


class SecretMissing(Exception):
    """A secret the config names (an environment variable, a file) is not there; the message
    names the config field and the variable or file, never a value."""


class StreamAuth(_Model):
    """The account the rig gives a stream that asks for credentials (HTTP Basic or Digest,
    RTSP Digest). The password is never in the config: ``password_env`` names an environment
    variable, ``password_file`` a file whose first line is the password (a mounted secret)."""

    user: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^:\s]+$")]
    password_env: Annotated[str, Field(pattern=ENV_RE)] | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "StreamAuth":
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env (an environment variable) or password_file")
        return self

    def credentials(self, where: str):  # -> drivers.httpauth.Credentials
        """The user and password, read now; raises :class:`SecretMissing` naming ``where`` (the
        config field) and the variable or file when the password cannot be had."""
        from drivers.httpauth import Credentials

        if self.password_env is not None:
            import os

            value = os.environ.get(self.password_env)
            if not value:
                raise SecretMissing(f"{where}.password_env: environment variable {self.password_env} is not set")
            return Credentials(self.user, value)
        assert self.password_file is not None
        try:
            with open(self.password_file, "rb") as fh:
                raw = fh.read(4097)
        except OSError as exc:
            raise SecretMissing(f"{where}.password_file: {self.password_file}: {exc.strerror or exc}") from None
        value = raw[:4096].decode("utf-8", "replace").split("\n", 1)[0].rstrip("\r")
        if not value:
            raise SecretMissing(f"{where}.password_file: {self.password_file} holds no password")
        return Credentials(self.user, value)


def _no_userinfo(value: str) -> str:
    """A stream URL without ``user:password@``: credentials go in ``auth``, never in a URL that
    is journaled, rendered and signed into the bundle."""
    rest = value.split("://", 1)[1] if "://" in value else value
    if "@" in rest.split("/", 1)[0]:
        raise ValueError("the URL carries user:password@; give the credentials in auth: {user: ..., password_env: ...} "
                         "so they never reach the bundle")
    return value


class CameraStream(_Model):
    name: Annotated[str, Field(pattern=NAME_RE)]
    url: Annotated[str, _url_of(r"^(https?|rtsp|rtsps|file|device)://", "stream url must start with http://, https://, rtsp://, rtsps://, file:// or device://"),
                   AfterValidator(_no_userinfo)]
    #: credentials the stream demands (Basic or Digest, as it asks)
    auth: StreamAuth | None = None


class Observation(_Model):
    """A bench camera looking at the device from outside (a stream URL, or a local video
    device as ``device:///dev/videoN``), and where the lens is in its picture."""

    url: Annotated[str, _url_of(r"^(https?|rtsps?)://|^device:///dev/",
                                "the observation camera is an http(s):// MJPEG stream, an rtsp(s):// stream or a local video device (device:///dev/videoN)"),
                   AfterValidator(_no_userinfo)]
    auth: StreamAuth | None = None
    lens: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=4, max_length=4)]  # x, y, w, h


class Camera(_Model):
    streams: list[CameraStream] = Field(default_factory=list)
    #: camera-shutter: also check, from outside, that a physical cover closes over the lens
    observation: Observation | None = None
    settle_s: float = Field(default=1.0, ge=0, le=60)  # after a shutter action, before frames are judged
    window_s: float = Field(default=4.0, ge=0.5, le=120)  # how long each window of frames is grabbed
    frames: int = Field(default=12, ge=2, le=500)  # frames per window (at most)
    #: deidentification: the unprocessed scene as the outputs frame it (a technician's capture)
    reference: Path | None = None
    #: face regions [x, y, w, h] in the reference; found by CenterFace in the reference when empty
    faces: list[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=4, max_length=4)]] = Field(default_factory=list)


def _device_path(value: str) -> str:
    """An absolute path on the device, normalised; never under /dev, /proc or /sys, which
    the storage scenarios must not descend into or read."""
    if not value.startswith("/") or any(c in value for c in "\0\n\r"):
        raise ValueError("must be an absolute path on the device (no newlines)")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("must not contain '..'")
    norm = "/" + "/".join(parts)
    if parts and parts[0] in ("dev", "proc", "sys"):
        raise ValueError(f"{norm}: /dev, /proc and /sys are never searched or read (raw devices go in storage.raw_devices)")
    return norm


def _raw_device(value: str) -> str:
    """A block device on the device, named under /dev."""
    if not re.fullmatch(r"/dev/[A-Za-z0-9._/-]{1,64}", value) or ".." in value:
        raise ValueError("a raw device is a block device path such as /dev/mmcblk0p3")
    return value


DevicePath = Annotated[str, AfterValidator(_device_path)]


class ModelFile(_Model):
    """A model file on the device (edge AI standard: models protected against theft and tampering)."""

    path: DevicePath
    #: storage-at-rest tampers with it (a copy is kept and put back) and runs ``model-load``: the device must refuse it
    tamper_check: bool = True


class ModelSettings(_Model):
    """The AI model on the device, for model-at-rest: the files the vendor declares and where
    the rig searches by content for model files under any name."""

    #: model files the vendor declares (each must be there and is judged)
    files: list[DevicePath] = Field(default_factory=list)
    #: folders searched by content for model files (default: the storage section's data,
    #: external and config roots, and /opt and /usr/share)
    search_roots: list[DevicePath] = Field(default_factory=list)
    #: bytes read from each model file for the parser, at most (MiB); a larger file is judged by its structure
    max_read_mb: int = Field(default=64, ge=1, le=4096)
    #: model files found by the search and parsed, at most (the rest are listed)
    max_candidates: int = Field(default=32, ge=1, le=1000)
    #: the vendor's genuine model (ONNX) on the bench host: model-integrity derives its tampered variants from it
    genuine: Path | None = None
    #: where the genuine model carries its signature (a trailer, or a detached file): the rig's own re-signed variant
    signature: "SignatureFormat | None" = None
    #: via ssh, the rig uploads each model (and each probe image for infer) here over SFTP
    upload_dir: DevicePath = "/tmp"
    #: waited after every model-deploy before the device is asked again (a device that reloads in the background)
    settle_s: float = Field(default=1.0, ge=0, le=600)
    #: the largest genuine model the rig reads (it holds one in memory at a time)
    max_mb: int = Field(default=256, ge=1, le=4096)
    #: how one image is sent to the device's model and its answer read (model-integrity, model-robustness)
    infer: "InferSettings | None" = None
    #: the lab's probe images (a folder of PNG/JPEG); without, the rig renders its own
    probes: Path | None = None


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError("must be an http:// or https:// address")
    return value


class InferAnswer(_Model):
    """Where the answer of ``infer`` (a JSON document) holds the model's output: dotted paths
    such as ``result.label``; ``scores`` is the full score vector where the device returns one."""

    label: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")] = "label"
    score: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    scores: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")] | None = None


class InferSettings(_Model):
    """One image to the device's model and its answer back: an HTTP POST of the image to ``url``
    (with ``auth`` when the endpoint asks), or, without ``url``, the device's ``infer`` action
    (via ssh the image is uploaded to ``model.upload_dir`` and the command gets its path as
    ``{image}``; via host, a bench-host file). The answer is JSON, read as ``answer`` says."""

    url: Annotated[str, AfterValidator(lambda v: _http_url(_no_userinfo(v)))] | None = None
    auth: StreamAuth | None = None
    content_type: Literal["image/png", "image/jpeg"] = "image/png"
    answer: InferAnswer = InferAnswer()
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: an answer longer than this (KiB) is not read: a device cannot make the rig parse megabytes
    max_answer_kb: int = Field(default=256, ge=1, le=65536)

    @model_validator(mode="after")
    def _url(self) -> "InferSettings":
        if self.auth is not None and self.url is None:
            raise ValueError("auth goes with url (the infer action carries its own credentials)")
        return self


class Storage(_Model):
    """Where the device keeps data: what uninstall-wipe and storage-at-rest search."""

    data_roots: Annotated[list[DevicePath], Field(min_length=1)]  # internal storage the app and its users write
    external_roots: list[DevicePath] = Field(default_factory=list)  # SD card, USB stick (6.2.3 d)
    config_roots: list[DevicePath] = Field(default_factory=lambda: ["/etc"])  # configuration and app files (plaintext secrets)
    shadow_files: list[DevicePath] = Field(default_factory=lambda: ["/etc/shadow"])  # password hashes (6.2.4 b 1)
    encrypted: list[DevicePath] = Field(default_factory=list)  # files the vendor declares encrypted
    models: list[ModelFile] = Field(default_factory=list)
    #: block devices scanned raw for the canary after the wipe (read only when listed here)
    raw_devices: list[Annotated[str, AfterValidator(_raw_device)]] = Field(default_factory=list)
    raw_scan_mb: int = Field(default=256, ge=1, le=65536)  # bytes read from each raw device, at most
    #: glob patterns of files that change by themselves (system logs): not residue unless they hold the canary
    ignore: list[str] = Field(default_factory=list)
    search_timeout_s: float = Field(default=300, ge=5, le=7200)  # each search on the device
    max_files: int = Field(default=200_000, ge=100, le=10_000_000)  # listed per snapshot, at most


class Action(_Model):
    """A named command the rig may trigger on the device.

    ``via: ssh`` and ``via: serial`` send ``command`` to the device shell; ``via: host``
    runs ``argv`` on the bench host without a shell (for relay scripts and hooks).
    """

    via: Literal["ssh", "serial", "host"]
    command: str | None = None
    argv: list[str] | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    expect_exit: int | None = 0

    @model_validator(mode="after")
    def _shape(self) -> "Action":
        if self.via == "host":
            if not self.argv or self.command is not None:
                raise ValueError("a host action takes argv (a list, run without a shell), not command")
            texts = self.argv
        else:
            if not self.command or self.argv is not None:
                raise ValueError(f"an action via {self.via} takes command (a string), not argv")
            texts = [self.command]
        for text in texts:
            try:
                parsed = list(string.Formatter().parse(text))
            except ValueError as exc:
                raise ValueError(f"{text!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
            for _, field, spec, conv in parsed:
                if field is not None and (spec or conv):
                    raise ValueError(f"placeholder {{{field}}} takes no format spec or conversion ({text!r})")
                if field is not None and field not in ACTION_PLACEHOLDERS:
                    raise ValueError(
                        f"unknown placeholder {{{field}}}; allowed: "
                        + ", ".join("{" + p + "}" for p in sorted(ACTION_PLACEHOLDERS))
                        + " (write {{ and }} for literal braces)"
                    )
        return self

    def render(self, **values: str) -> str | list[str]:
        """Return the command (or argv) with placeholders filled in."""
        if self.argv is not None:
            return [a.format(**values) for a in self.argv]
        assert self.command is not None
        return self.command.format(**values)


def _action_name(name: str) -> str:
    if name not in ACTION_NAMES and not re.fullmatch(r"x-[a-z0-9-]{1,40}", name):
        raise ValueError(f"unknown action {name!r}; known actions: {', '.join(ACTION_NAMES)} (custom ones start with x-)")
    return name


ActionName = Annotated[str, AfterValidator(_action_name)]


class PowerSettings(_Model):
    """How the rig powers the device and knows it is back (with the ``power-off``/``power-on``
    or ``power-cycle`` actions: a relay or PDU command ``via: host``, or a soft reboot ``via:
    ssh`` / ``serial``)."""

    #: what says the device is back: its network address answering on a declared TCP port, an
    #: SSH login, or a console prompt (login, shell or bootloader)
    wait_for: Literal["network", "ssh", "console"] = "network"
    timeout_s: float = Field(default=120.0, gt=0, le=1800)  # from power-on until it must be back
    off_s: float = Field(default=2.0, ge=0, le=300)  # how long power stays off between power-off and power-on
    #: after power-off (or a reboot command) the device must be seen down within this (else the cycle is not observed)
    down_s: float = Field(default=10.0, gt=0, le=300)
    #: debug-ports watches the console this long after power-on for a bootloader's autoboot
    boot_watch_s: float = Field(default=20.0, gt=0, le=600)


class KeyPair(_Model):
    """A certificate (PEM, with its chain) and its private key."""

    cert: Path
    key: Path


class SignatureFormat(_Model):
    """Where an update image carries its signature, so the rig can replace it with one of its own:
    the last ``trailer_bytes`` of the image, or a detached file beside it."""

    trailer_bytes: int | None = Field(default=None, ge=8, le=16384)
    detached: Path | None = None  # the genuine image's detached signature (firmware-apply gets it as {signature})
    #: how the rig signs its own (an Ed25519 signature is 64 bytes; an RSA-2048 one 256; ECDSA P-256 DER up to 72)
    algorithm: Literal["ed25519", "rsa-pss-sha256", "ecdsa-p256-sha256"] = "ed25519"

    @model_validator(mode="after")
    def _one(self) -> "SignatureFormat":
        if (self.trailer_bytes is None) == (self.detached is None):
            raise ValueError("give exactly one of trailer_bytes (the signature ends the image) or detached (a signature file)")
        return self


class FirmwareSettings(_Model):
    """What firmware-update applies: the vendor's genuine images, and how the rig knows each
    took. The images stay on the bench host; the bundle keeps their hashes and sizes only."""

    image: Path  # the genuine update image (newer than what the device runs)
    version: Annotated[str, Field(min_length=1, max_length=64)]  # what identify reports once it runs
    older: Path | None = None  # an older genuine image: the rollback variant
    #: the older image's detached signature, as the vendor made it (with signature.detached: without it rollback is not observed)
    older_signature: Path | None = None
    signature: SignatureFormat | None = None
    #: via ssh, the rig uploads each image here (SFTP) and firmware-apply gets the device path as {image}
    upload_dir: DevicePath = "/tmp"
    #: identify's wait after an accepted image (a device that reboots to flash), bounded by power.timeout_s
    settle_s: float = Field(default=2.0, ge=0, le=600)
    #: the address(es) the device fetches updates from; with an update-check action the fetch is captured and judged
    update_servers: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = Field(default_factory=list)
    #: the largest image the rig reads (it holds one in memory at a time)
    max_mb: int = Field(default=512, ge=1, le=4096)


class Uplink(_Model):
    """A server the device connects to on its own (its cloud, an NVR, a broker), as server-auth
    intercepts it: the device's connections to ``address:port`` are redirected to the rig."""

    name: Annotated[str, Field(pattern=NAME_RE)]
    address: ipaddress.IPv4Address
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tls", "mqtt", "http"] = "tls"  # mqtt and http: in the clear, a finding in themselves
    server_name: str | None = None  # the name the device expects in the certificate (SNI)
    #: certificates chaining to a CA the device trusts, obtained by the lab: for another name, and expired
    wrong_name: KeyPair | None = None
    expired: KeyPair | None = None
    window_s: float = Field(default=15.0, gt=0, le=600)  # how long the rig waits for the device's next connection, per attempt


class CaptureSettings(_Model):
    """How channel-encryption makes the device talk and how long it listens."""

    duration_s: float = Field(default=8.0, ge=1, le=600)  # capture window while the device streams
    pull_s: float = Field(default=3.0, ge=0.5, le=300)  # how long the rig pulls each configured stream
    sink_port: int = Field(default=25004, ge=1024, le=65531)  # UDP sink_port..+3 and TCP sink_port
    max_mb: int = Field(default=256, ge=1, le=4096)  # the pcap stops growing here (capture marked truncated)


class DeviceConfig(_Model):
    identity: Identity = Identity()
    privacy_level: Literal[1, 2, 3]
    network: NetworkTransport | None = None
    ssh: SshTransport | None = None
    serial: SerialTransport | None = None
    usb: UsbTransport | None = None
    camera: Camera | None = None
    capture: CaptureSettings = CaptureSettings()
    storage: Storage | None = None
    model: ModelSettings | None = None
    actions: dict[ActionName, Action] = Field(default_factory=dict)
    #: the vendor's documented default accounts (user:password lines), tried before the built-in lists
    credentials: Path | None = None
    power: PowerSettings = PowerSettings()
    #: this device's scenario deadline (seconds), instead of bench.scenario_timeout_s
    scenario_timeout_s: float | None = Field(default=None, gt=0, le=86400)
    firmware: FirmwareSettings | None = None
    uplinks: list[Uplink] = Field(default_factory=list)

    @field_validator("actions")
    @classmethod
    def _placeholders_given(cls, actions: dict[str, Action]) -> dict[str, Action]:
        for name, action in actions.items():
            given = ACTION_GIVEN.get(name, set())
            for text in action.argv or [action.command or ""]:
                for _, fld, _, _ in string.Formatter().parse(text):
                    if fld is not None and fld not in given:
                        raise ValueError(f"{name}: {{{fld}}} is never filled in for this action; it is given "
                                         + (", ".join("{" + p + "}" for p in sorted(given)) if given else "no placeholders")
                                         + " (write {{ and }} for literal braces)")
        return actions


class SimDevice(_Model):
    profile: Literal["compliant", "violating", "debug-nonstd", "bootloader", "stream-secure", "stream-plain", "mute", "retail", "retail-secure"]


class Simulator(_Model):
    """The simulated bench that ``rig sim up`` builds from this config."""

    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("198.18.0.0/24")
    bridge: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,11}$")] = "rigbr0"
    state_dir: Path = Path("/run/privrig/sim")
    #: the simulated cameras' cloud (heartbeats, updates): on the bench host, outside the subnet, reached through it as the gateway
    cloud: ipaddress.IPv4Address = ipaddress.IPv4Address("198.19.0.50")
    devices: dict[Annotated[str, Field(pattern=NAME_RE)], SimDevice]

    @field_validator("cloud")
    @classmethod
    def _cloud_range(cls, value: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
        if value not in SIM_ALLOWED_RANGE:
            raise ValueError(f"the simulated cloud must stay inside {SIM_ALLOWED_RANGE}, got {value}")
        return value

    @model_validator(mode="after")
    def _cloud_outside(self) -> "Simulator":
        if self.cloud in self.subnet:
            raise ValueError(f"simulator.cloud {self.cloud} must be outside the bench subnet {self.subnet} (it is reached through the bench host)")
        return self

    @field_validator("subnet")
    @classmethod
    def _benchmark_range(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not value.subnet_of(SIM_ALLOWED_RANGE):  # type: ignore[arg-type]
            raise ValueError(f"simulated test hosts must stay inside {SIM_ALLOWED_RANGE}, got {value}")
        if value.prefixlen > 28:
            raise ValueError("subnet too small for a bench: use /28 or larger")
        return value

    @property
    def bench_address(self) -> ipaddress.IPv4Address:
        return next(self.subnet.hosts())


class HistoryDb(_Model):
    """Where runs are indexed (rig history): a SQLAlchemy URL, such as
    ``postgresql+psycopg://rig@db.lab/privrig``; its password comes from ``password_env``."""

    url: str
    password_env: str | None = None

    @field_validator("url")
    @classmethod
    def _no_password(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v):
            raise ValueError("history url must be sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
        if re.match(r"^[^:]+://[^/@]*:[^/@]*@", v):
            raise ValueError("no password in the URL: name an environment variable in password_env")
        return v


class BenchInfo(_Model):
    name: Annotated[str, Field(pattern=NAME_RE)]
    evidence_dir: Path | None = None
    #: where runs are indexed for rig history (default: SQLite in the evidence folder)
    history: HistoryDb | None = None
    #: write accepted default passwords into findings (off: named by list entry only)
    reveal_credentials: bool = False
    #: default accounts every device of this bench is tried with (user:password lines), after its own file
    credentials: Path | None = None
    #: every scenario ends by this deadline (seconds), as ``error`` with what it saw so far
    scenario_timeout_s: float = Field(default=DEFAULT_SCENARIO_TIMEOUT_S, gt=0, le=86400)


class BenchConfig(_Model):
    version: Literal[1] = 1
    bench: BenchInfo
    devices: dict[Annotated[str, Field(pattern=NAME_RE)], DeviceConfig] = Field(min_length=1)
    simulator: Simulator | None = None


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        """One line, whatever the file held: control characters and newlines are shown as
        escapes, so a key or value can never forge another line or drive the terminal."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return _one_line(f"{where}: {self.field or '(top level)'}: {self.message}")


def _one_line(text: str) -> str:
    """``text`` with every control character (newlines, escape sequences) shown as ``\\xNN``."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", text)


class ConfigError(Exception):
    """The config cannot be used. ``problems`` each name file, line and field."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config together with where it came from."""

    path: Path
    sha256: str
    text: str
    bench: BenchConfig

    def device(self, name: str) -> DeviceConfig:
        return self.bench.devices[name]


class _Marks:
    """Line/column of every node in a YAML document, addressed by key path."""

    def __init__(self, root: yaml.Node | None):
        self.root = root

    def locate(self, loc: tuple[Any, ...]) -> tuple[int | None, int | None]:
        node = self.root
        if node is None:
            return None, None
        best = node
        for key in loc:
            nxt = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                        nxt = v
                        best = k
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
                nxt = node.value[key]
                best = nxt
            if nxt is None:
                continue  # pydantic adds loc parts (union tags) that are not YAML keys
            node = nxt
        return best.start_mark.line + 1, best.start_mark.column + 1


#: a config file larger than this is refused before it is read (the shipped bench is ~10 KiB)
MAX_CONFIG_BYTES = 1 << 20
#: nesting deeper than this is refused (the schema needs 6 levels)
MAX_DEPTH = 40
#: nodes a document may expand to, aliases followed: an alias bomb ("billion laughs") is
#: refused long before it is built
MAX_NODES = 200_000


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loading without the implicit timestamp: ``firmware: 2020-02-30`` is a
    string (a version, a build date), never a date object that may not exist."""


_Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


class _Shape(Exception):
    """The YAML tree breaks a bound (depth, size, a recursive alias); carries the node."""

    def __init__(self, node: yaml.Node, message: str):
        super().__init__(message)
        self.node, self.message = node, message


def _check_tree(root: yaml.Node | None) -> list[tuple[str, yaml.Node]]:
    """Walk the composed tree once, aliases followed, bounded: raises :class:`_Shape` on a
    recursive alias, nesting deeper than :data:`MAX_DEPTH` or more than :data:`MAX_NODES`
    nodes; returns the keys given twice (path, key node)."""
    dups: list[tuple[str, yaml.Node]] = []
    count = 0
    stack: list[tuple[yaml.Node, str, int]] = [(root, "", 0)] if root is not None else []
    on_path: dict[int, int] = {}  # node id -> depth it is open at (cycle detection)
    exits: list[tuple[int, int]] = []
    while stack:
        node, path, depth = stack.pop()
        while exits and exits[-1][1] >= depth:  # leave the nodes we are no longer inside
            on_path.pop(exits.pop()[0], None)
        count += 1
        if count > MAX_NODES:
            raise _Shape(node, f"the document expands to more than {MAX_NODES} values (an alias bomb?)")
        if depth > MAX_DEPTH:
            raise _Shape(node, f"nested more than {MAX_DEPTH} levels deep")
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            continue
        if id(node) in on_path:
            raise _Shape(node, "a recursive alias (a node that contains itself)")
        on_path[id(node)] = depth
        exits.append((id(node), depth))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in reversed(node.value):
                key = str(getattr(k, "value", "?"))
                sub = f"{path}.{key}" if path else key
                stack.append((v, sub, depth + 1))
            for k, _ in node.value:
                key = str(getattr(k, "value", "?"))
                if key in seen:
                    dups.append((f"{path}.{key}" if path else key, k))
                seen.add(key)
        else:
            for i, v in reversed(list(enumerate(node.value))):
                stack.append((v, f"{path}[{i}]", depth + 1))
    return dups


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # pydantic's internal union/validator tags
        else:
            out += ("." if out else "") + str(part)
    return out


def _cross_checks(cfg: BenchConfig) -> list[tuple[tuple[Any, ...], str]]:
    problems: list[tuple[tuple[Any, ...], str]] = []
    for name, dev in cfg.devices.items():
        for aname, action in dev.actions.items():
            if action.via == "ssh" and dev.ssh is None:
                problems.append((("devices", name, "actions", aname, "via"), "action uses ssh but the device has no ssh transport"))
            if action.via == "serial" and dev.serial is None:
                problems.append((("devices", name, "actions", aname, "via"), "action uses serial but the device has no serial transport"))
        acts = dev.actions
        if "firmware-apply" in acts and acts["firmware-apply"].via == "serial":
            problems.append((("devices", name, "actions", "firmware-apply", "via"), "firmware-apply runs via ssh (the rig uploads the image over SFTP) "
                             "or via host (an HTTP upload, a vendor tool); a serial console cannot carry an image"))
        if "model-deploy" in acts and acts["model-deploy"].via == "serial":
            problems.append((("devices", name, "actions", "model-deploy", "via"), "model-deploy runs via ssh (the rig uploads the model over SFTP) "
                             "or via host (an HTTP upload, a vendor tool); a serial console cannot carry a model"))
        if "infer" in acts and acts["infer"].via == "serial":
            problems.append((("devices", name, "actions", "infer", "via"), "infer runs via ssh (the rig uploads the image over SFTP) or via host"))
        if "model-deploy" in acts and (dev.model is None or dev.model.genuine is None):
            problems.append((("devices", name, "actions", "model-deploy"), "model-deploy needs model.genuine (the vendor's genuine model file)"))
        if dev.model is not None and dev.model.infer is not None and dev.model.infer.url is None and "infer" not in acts:
            problems.append((("devices", name, "model", "infer"), "model.infer without url needs an infer action (the image is handed to it as {image})"))
        if "firmware-apply" in acts and dev.firmware is None:
            problems.append((("devices", name, "actions", "firmware-apply"), "firmware-apply needs a firmware section (image, version)"))
        if ("power-off" in acts) != ("power-on" in acts):
            have = "power-off" if "power-off" in acts else "power-on"
            problems.append((("devices", name, "actions", have), "power-off and power-on come together (or give power-cycle alone)"))
        for aname in ("power-off", "power-on"):
            if aname in acts and acts[aname].via != "host":
                problems.append((("devices", name, "actions", aname, "via"), f"{aname} switches the supply: via host (a relay or PDU command); "
                                 "a soft reboot over ssh or serial is power-cycle"))
        if "power" in dev.model_fields_set:
            pw = dev.power
            if pw.wait_for == "ssh" and dev.ssh is None:
                problems.append((("devices", name, "power", "wait_for"), "wait_for ssh needs the device's ssh transport"))
            if pw.wait_for == "console" and dev.serial is None:
                problems.append((("devices", name, "power", "wait_for"), "wait_for console needs the device's serial transport"))
            if pw.wait_for == "network" and (dev.network is None or not any(p.proto == "tcp" for p in dev.network.open_ports)) and dev.ssh is None:
                problems.append((("devices", name, "power", "wait_for"), "wait_for network needs a declared TCP port or an ssh transport to knock on"))
        if dev.network is not None:
            seen: set[str] = set()
            for i, p in enumerate(dev.network.open_ports):
                if str(p) in seen:
                    problems.append((("devices", name, "network", "open_ports", i), f"port {p} declared twice"))
                seen.add(str(p))
    if cfg.simulator is not None:
        sim = cfg.simulator
        for name in sim.devices:
            dev = cfg.devices.get(name)
            if dev is None:
                problems.append((("simulator", "devices", name), f"no device named {name!r} under devices"))
                continue
            if dev.network is None:
                problems.append((("devices", name), "a simulated device needs network.address"))
                continue
            addr = dev.network.address
            if addr not in sim.subnet or addr == sim.bench_address or addr in (sim.subnet.network_address, sim.subnet.broadcast_address):
                problems.append(
                    (("devices", name, "network", "address"), f"{addr} is not a usable device address in the simulator subnet {sim.subnet} (the bench host is {sim.bench_address})")
                )
    return problems


def read_yaml(text: str, fname: str) -> tuple[Any, "_Marks"]:
    """YAML ``text`` (from ``fname``) parsed once, bounded and checked for duplicate keys: the
    data and the line/column of every node. Raises :class:`ConfigError` naming where."""

    def at(mark: Any, message: str) -> ConfigError:
        return ConfigError([ConfigProblem(fname, mark.line + 1 if mark else None, mark.column + 1 if mark else None, "", message)])

    try:
        loader = _Loader(text)  # the reader refuses control characters here already
    except yaml.YAMLError as exc:
        raise at(None, f"not valid YAML: {str(exc).splitlines()[0][:120]}") from None
    try:
        try:
            root = loader.get_single_node()  # parsed once: the tree gives the line numbers and the data
        except yaml.YAMLError as exc:
            raise at(getattr(exc, "problem_mark", None), f"not valid YAML: {getattr(exc, 'problem', None) or str(exc).splitlines()[0][:120]}") from None
        except RecursionError:
            raise at(None, f"not valid YAML: nested far more than {MAX_DEPTH} levels deep") from None
        try:
            dups = _check_tree(root)
        except _Shape as exc:
            raise at(exc.node.start_mark, exc.message) from None
        try:
            data = loader.construct_document(root) if root is not None else None
        except yaml.YAMLError as exc:
            raise at(getattr(exc, "problem_mark", None), f"a value cannot be read: {getattr(exc, 'problem', None) or exc}") from None
        except Exception as exc:  # noqa: BLE001 - untrusted input: every constructor failure is the file's problem
            # an explicit tag the value does not fit (!!int abc, !!bool maybe, an empty !!int): PyYAML says not where
            raise at(None, f"a value does not fit its YAML tag ({type(exc).__name__}: {str(exc)[:80]})") from None
    finally:
        loader.dispose()
    marks = _Marks(root)
    if dups:
        raise ConfigError(
            [ConfigProblem(fname, n.start_mark.line + 1, n.start_mark.column + 1, p, "key given twice") for p, n in dups]
        )
    return data, marks


def validate_model(model: type[BaseModel], data: Any, marks: "_Marks", fname: str) -> Any:
    """``data`` validated into ``model``; raises :class:`ConfigError` with a file:line:column
    line per problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line, col = marks.locate(loc)
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if err["type"] == "string_type" and isinstance(err.get("input"), bool):
                msg += " (YAML reads unquoted on/off/yes/no/true/false as booleans: quote the value)"
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; `rig config schema` lists the fields)"
            problems.append(ConfigProblem(fname, line, col, _field_path(loc), msg))
        raise ConfigError(problems) from None


def parse_config(text: str, path: Path) -> LoadedConfig:
    """Validate YAML ``text`` (read from ``path``) into a :class:`LoadedConfig`.

    Relative paths inside the config are resolved against the config file's folder.
    Raises :class:`ConfigError` listing every problem found; never returns a partially
    valid config.
    """
    fname = str(path)
    data, marks = read_yaml(text, fname)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(fname, 1, 1, "", "a bench config is a YAML mapping with bench: and devices:")])
    cfg = validate_model(BenchConfig, data, marks, fname)
    cross = _cross_checks(cfg)
    if cross:
        problems = []
        for loc, msg in cross:
            line, col = marks.locate(loc)
            problems.append(ConfigProblem(fname, line, col, _field_path(loc), msg))
        raise ConfigError(problems)
    try:
        cfg = _resolve_paths(cfg, path.parent)
    except ValueError as exc:
        raise ConfigError([ConfigProblem(fname, None, None, "", str(exc))]) from None
    cred_problems = _credential_files(cfg)
    if cred_problems:
        raise ConfigError(cred_problems)
    return LoadedConfig(path=path, sha256=hashlib.sha256(text.encode()).hexdigest(), text=text, bench=cfg)


def _resolve_paths(cfg: BenchConfig, base: Path) -> BenchConfig:
    def res(p: Path | None, field: str) -> Path | None:
        if p is None:
            return None
        try:
            p = p.expanduser()
        except RuntimeError:  # ~nosuchuser: no home directory to expand to
            raise ValueError(f"{field}: {p}: cannot expand ~ (no such user, or no home directory)") from None
        return p if p.is_absolute() else (base / p).resolve()

    devices = {}
    for name, dev in cfg.devices.items():
        at = f"devices.{name}"
        if dev.ssh is not None:
            dev = dev.model_copy(update={"ssh": dev.ssh.model_copy(update={"key_file": res(dev.ssh.key_file, f"{at}.ssh.key_file"),
                                                                           "known_hosts": res(dev.ssh.known_hosts, f"{at}.ssh.known_hosts")})})
        if dev.camera is not None and dev.camera.reference is not None:
            dev = dev.model_copy(update={"camera": dev.camera.model_copy(update={"reference": res(dev.camera.reference, f"{at}.camera.reference")})})
        if dev.credentials is not None:
            dev = dev.model_copy(update={"credentials": res(dev.credentials, f"{at}.credentials")})
        if dev.firmware is not None:
            fw = dev.firmware
            sig = fw.signature
            if sig is not None and sig.detached is not None:
                sig = sig.model_copy(update={"detached": res(sig.detached, f"{at}.firmware.signature.detached")})
            dev = dev.model_copy(update={"firmware": fw.model_copy(update={"image": res(fw.image, f"{at}.firmware.image"),
                                                                          "older": res(fw.older, f"{at}.firmware.older"), "signature": sig})})
        if dev.model is not None:
            m = dev.model
            upd: dict = {"genuine": res(m.genuine, f"{at}.model.genuine"), "probes": res(m.probes, f"{at}.model.probes")}
            if m.signature is not None and m.signature.detached is not None:
                upd["signature"] = m.signature.model_copy(update={"detached": res(m.signature.detached, f"{at}.model.signature.detached")})
            if m.infer is not None and m.infer.auth is not None and m.infer.auth.password_file is not None:
                upd["infer"] = m.infer.model_copy(update={"auth": m.infer.auth.model_copy(update={
                    "password_file": res(m.infer.auth.password_file, f"{at}.model.infer.auth.password_file")})})
            dev = dev.model_copy(update={"model": m.model_copy(update=upd)})
        if dev.uplinks:
            ups = []
            for i, u in enumerate(dev.uplinks):
                upd = {}
                for which in ("wrong_name", "expired"):
                    kp = getattr(u, which)
                    if kp is not None:
                        upd[which] = kp.model_copy(update={"cert": res(kp.cert, f"{at}.uplinks[{i}].{which}.cert"),
                                                           "key": res(kp.key, f"{at}.uplinks[{i}].{which}.key")})
                ups.append(u.model_copy(update=upd))
            dev = dev.model_copy(update={"uplinks": ups})
        if dev.camera is not None:
            cam = dev.camera
            streams = [s.model_copy(update={"auth": s.auth.model_copy(update={"password_file": res(s.auth.password_file, f"{at}.camera.streams[{i}].auth.password_file")})})
                       if s.auth is not None and s.auth.password_file is not None else s for i, s in enumerate(cam.streams)]
            obs = cam.observation
            if obs is not None and obs.auth is not None and obs.auth.password_file is not None:
                obs = obs.model_copy(update={"auth": obs.auth.model_copy(update={"password_file": res(obs.auth.password_file, f"{at}.camera.observation.auth.password_file")})})
            dev = dev.model_copy(update={"camera": cam.model_copy(update={"streams": streams, "observation": obs})})
        if dev.network is not None and dev.network.tls is not None:
            tls = dev.network.tls.model_copy(update={"client_cert": res(dev.network.tls.client_cert, f"{at}.network.tls.client_cert"),
                                                     "client_key": res(dev.network.tls.client_key, f"{at}.network.tls.client_key")})
            dev = dev.model_copy(update={"network": dev.network.model_copy(update={"tls": tls})})
        devices[name] = dev
    bench = cfg.bench.model_copy(update={"evidence_dir": res(cfg.bench.evidence_dir, "bench.evidence_dir"),
                                         "credentials": res(cfg.bench.credentials, "bench.credentials")})
    return cfg.model_copy(update={"devices": devices, "bench": bench})


def _credential_files(cfg: BenchConfig) -> list[ConfigProblem]:
    """Every ``credentials:`` file read and checked now, so ``rig config check`` names a bad
    line by its file and line (the problem is the file's, not the config's)."""
    from rig.credentials import CredentialFileError, load_file

    problems = []
    files = {cfg.bench.credentials: "bench.credentials"}
    for name, dev in cfg.devices.items():
        files.setdefault(dev.credentials, f"devices.{name}.credentials")
    for path, field in files.items():
        if path is None:
            continue
        try:
            load_file(path)
        except CredentialFileError as exc:
            problems.append(ConfigProblem(str(exc.path), exc.line, None, field, str(exc)))
    return problems


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate the bench config at ``path``.

    Raises :class:`ConfigError` (never a bare OSError or YAML error) when the file is
    missing, unreadable, not YAML or not a valid bench config.
    """
    p = Path(path)
    return parse_config(read_config_text(p), p)


def read_config_text(p: Path) -> str:
    """The text of a config file: a regular file only (a FIFO or ``/dev/zero`` is refused before
    it is read), at most 1 MiB, UTF-8. Raises :class:`ConfigError` naming the file."""
    import os
    import stat

    def problem(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(str(p), None, None, "", message)])

    try:
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):  # /dev/zero would be read forever, a FIFO waits forever
            raise problem("not a regular file (a device, a FIFO or a folder); give the path of a YAML file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise problem(f"config larger than {MAX_CONFIG_BYTES >> 20} MiB ({st.st_size} bytes); is this the right file?")
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else after the stat
                raise problem("not a regular file")
            raw = os.read(fd, MAX_CONFIG_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise problem(f"cannot read config: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise problem(f"config larger than {MAX_CONFIG_BYTES >> 20} MiB; is this the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(str(p), None, None, "", f"not UTF-8 text (byte {exc.start})")]) from None


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the bench config, for editors and other tools."""
    schema = BenchConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "privrig bench config"
    return schema
