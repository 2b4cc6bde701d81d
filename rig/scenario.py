"""What a scenario is and what it may use while it runs.

A scenario (one module in ``scenarios/``) is a class with a stable ``id``, the
``clauses`` it checks, :meth:`Scenario.applies` and :meth:`Scenario.run`. While it
runs it records, through its :class:`ScenarioContext`, the parts it observes
(:mod:`rig.coverage`), measurements, findings and artifacts (OpenHTF's phases and
measurements, in small). It never decides its own verdict: the engine does, from the
findings and the parts (:func:`rig.coverage.decide`). Drivers it asks for are opened
lazily, write their transcripts into the bundle and are closed when the scenario ends,
whatever happens.
"""

from __future__ import annotations

import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from drivers.errors import CommandTimeout, DeviceError
from drivers.serial import SerialDriver
from drivers.ssh import SshDriver
from drivers.transcript import Transcript, escape_bytes
from drivers.httpauth import Credentials
from rig.config import DEFAULT_SCENARIO_TIMEOUT_S, Action, BenchConfig, CameraStream, DeviceConfig, StreamAuth
from rig.coverage import Coverage, Part
from rig.evidence import ArtifactFolder, ArtifactStream, Journal
from rig.results import ArtifactRef, Finding

if TYPE_CHECKING:
    from rig.credentials import Entry


class Scenario:
    """Base class of every check. Subclasses set ``id``, ``title``, ``clauses``."""

    id: ClassVar[str]
    title: ClassVar[str]
    clauses: ClassVar[tuple[str, ...]]

    def applies(self, device: DeviceConfig) -> str | None:
        """``None`` if the scenario applies to ``device``, else the reason it does not."""
        return None

    def unconfigured(self, device: DeviceConfig) -> list["Unconfigured"]:
        """The parts of this scenario the config of ``device`` gives the rig no means to carry
        out (no power action for the bootloader, no serial for the console): the scenario
        records them as ``not-configured`` and ``rig config check`` names them as hints. Only
        called when the scenario applies. A scenario with nothing optional returns ``[]``."""
        return []

    def run(self, ctx: "ScenarioContext") -> None:
        """Carry out the check: declare the parts to observe (:meth:`ScenarioContext.part`) and
        record what each saw, with findings and artifacts. The engine makes the verdict."""
        raise NotImplementedError

    @classmethod
    def replay_inputs(cls, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs a rerun hands back (``measurements.inputs`` of an earlier run), checked;
        raises ValueError naming what is wrong. A scenario that draws nothing takes nothing."""
        if inputs:
            raise ValueError(f"{cls.id} takes no replayed inputs (got {', '.join(sorted(inputs))})")
        return {}


@dataclass(frozen=True)
class Unconfigured:
    """A part the config gives no means to carry out: its name, what is missing in a few words
    ("no power action") and what to add to the config to check it."""

    part: str
    missing: str
    add: str


@dataclass(frozen=True)
class ScenarioOptions:
    """What the bench config says about every scenario of a device beyond the device itself."""

    #: the bench config allows accepted default passwords in findings
    reveal_credentials: bool = False
    #: the vendor's default-account files, the device's first, then the bench's
    credential_files: tuple[Path, ...] = ()
    #: each scenario's deadline (seconds): past it, the engine ends it as ``error`` with what it saw
    deadline_s: float = DEFAULT_SCENARIO_TIMEOUT_S

    @classmethod
    def of(cls, bench: BenchConfig, device: str) -> "ScenarioOptions":
        """The options of ``device`` in ``bench``."""
        dev = bench.devices[device]
        files = tuple(p for p in (dev.credentials, bench.bench.credentials) if p is not None)
        return cls(bench.bench.reveal_credentials, tuple(dict.fromkeys(files)),
                   dev.scenario_timeout_s if dev.scenario_timeout_s is not None else bench.bench.scenario_timeout_s)


class ScenarioExpired(BaseException):
    """Raised in a scenario's thread when it records anything after its deadline: the engine has
    already ended it (a BaseException, so that no ``except Exception`` of a scenario keeps it going)."""


class ScenarioContext:
    """Everything one scenario run on one device may touch."""

    def __init__(self, device_name: str, device: DeviceConfig, scenario_id: str, folder: ArtifactFolder, journal: Journal,
                 options: ScenarioOptions | None = None):
        self.device_name = device_name
        self.options = options or ScenarioOptions()
        #: the bench config allows accepted default passwords in findings
        self.reveal_credentials = self.options.reveal_credentials
        self.device = device
        self.scenario_id = scenario_id
        self.folder = folder
        self.journal = journal
        self.findings: list[Finding] = []
        self.coverage = Coverage()
        self.measurements: dict[str, Any] = {}
        #: inputs the scenario drew (canary tokens, seeds): preset to replay a run, recorded as ``inputs``
        self.inputs: dict[str, Any] = {}
        self._stack = ExitStack()
        self._ssh: SshDriver | None = None
        self._serial: SerialDriver | None = None
        self._secrets: list[str] = []
        self._words: list[str] = []
        self._transcripts: list[Transcript] = []
        #: set by the engine at the deadline: from then on recording raises :class:`ScenarioExpired`
        self.expired: str | None = None
        self._closing = threading.Lock()

    # -- recording --------------------------------------------------------------------
    def _alive(self) -> None:
        if self.expired is not None:
            raise ScenarioExpired(self.expired)

    def expire(self, reason: str) -> None:
        """The deadline passed (the engine calls this): nothing more is recorded, the drivers are
        closed (a read blocked on the device returns) and the transcripts sealed."""
        self.expired = reason
        self.folder.close()
        self.close()

    def step(self, message: str, **fields: Any) -> None:
        """Journal a step of the scenario (fsynced before returning)."""
        self._alive()
        self.journal.append("step", device=self.device_name, scenario=self.scenario_id, message=message, **fields)

    def measure(self, name: str, value: Any) -> None:
        """Record a measurement (journaled)."""
        self._alive()
        self.measurements[name] = value
        self.journal.append("measurement", device=self.device_name, scenario=self.scenario_id, name=name, value=value)

    def part(self, name: str, what: str, clauses: tuple[str, ...] | list[str] | None = None, control: bool = False,
             kind: str | None = None, **where: Any) -> Part:
        """Declare a part the scenario sets out to observe (see :mod:`rig.coverage`); returns it
        to record what was seen. Declared and never recorded, it counts as not observed."""
        self._alive()
        return self.coverage.part(name, what, clauses, control, kind, **where)

    def finding(self, kind: str, severity: str, summary: str, **where: Any) -> Finding:
        """Record a finding; ``where`` names interface, proto, port, path, flow, usb, evidence."""
        return self.record(Finding(kind=kind, severity=severity, summary=summary, **where))

    def record(self, f: Finding) -> Finding:
        """Record a finding built elsewhere (journaled, fsynced, before returning)."""
        self._alive()
        self.findings.append(f)
        self.journal.append("finding", device=self.device_name, scenario=self.scenario_id, finding=f.to_dict())
        return f

    def artifact(self, name: str, data: bytes, media_type: str) -> ArtifactRef:
        """Write and seal an artifact now; returns its reference (path, sha256)."""
        self._alive()
        return self.folder.write(name, data, media_type)

    def transcript(self, name: str) -> tuple[Transcript, ArtifactStream]:
        """A transcript written into the bundle as it grows, sealed when the scenario ends."""
        self._alive()
        stream = self.folder.open_stream(name, "application/x-ndjson")
        self._stack.callback(self.folder.adopt, stream)
        tr = Transcript(stream, secrets=list(self._secrets), words=list(self._words))
        self._transcripts.append(tr)
        return tr, stream

    def credentials(self, auth: StreamAuth | None, where: str) -> Credentials | None:
        """The account the config gives a stream (``None`` without ``auth``), its password
        redacted from every transcript of this scenario from now on. Raises
        :class:`~rig.config.SecretMissing` naming ``where`` when the password cannot be read."""
        if auth is None:
            return None
        creds = auth.credentials(where)
        if creds.password not in self._secrets:
            self._secrets.append(creds.password)
            for tr in self._transcripts:
                tr.add_secret(creds.password)
        return creds

    def tried_password(self, password: str) -> None:
        """A password the rig tries (a default list's): redacted as a word from every transcript
        of this scenario from now on, wherever the device or the rig's own request carries it."""
        if password and password not in self._words:
            self._words.append(password)
            for tr in self._transcripts:
                tr.add_word(password)

    def accounts(self, kind: str) -> list[Entry]:
        """The accounts to try for ``kind`` (:func:`rig.credentials.entries`): the vendor's files
        (device, bench), then the built-in list. Every password among them is redacted from this
        scenario's transcripts from now on, as a word, except one that is also a user name of the
        lists ("root", "admin"): the transcript names users, and blanking them would blank the
        evidence; such a password is public anyway."""
        from rig.credentials import entries

        out = entries(kind, self.options.credential_files)
        users = {e.user for e in out}
        for e in out:
            if e.password not in users:
                self.tried_password(e.password)
        return out

    def stream_credentials(self, name: str) -> Credentials | None:
        """:meth:`credentials` of the camera stream ``name`` (or ``observation``)."""
        cam = self.device.camera
        if cam is None:
            return None
        if cam.observation is not None and name == "observation":
            return self.credentials(cam.observation.auth, f"devices.{self.device_name}.camera.observation.auth")
        for i, s in enumerate(cam.streams):
            if s.name == name:
                return self.credentials(s.auth, f"devices.{self.device_name}.camera.streams[{i}].auth")
        return None

    # -- drivers ----------------------------------------------------------------------
    def ssh(self) -> SshDriver:
        """The device's SSH session (connected on first use, transcript ``ssh.jsonl``)."""
        if self.device.ssh is None:
            raise DeviceError(f"{self.device_name}: no ssh transport in the config")
        if self._ssh is None:
            tr, _ = self.transcript("ssh.jsonl")
            drv = SshDriver(self.device.ssh, tr, self.device_name)
            self._stack.callback(drv.close)
            drv.connect()
            self._ssh = drv
        return self._ssh

    def serial(self) -> SerialDriver:
        """The device's serial console (opened on first use; ``console.jsonl`` + ``console.raw``)."""
        if self.device.serial is None:
            raise DeviceError(f"{self.device_name}: no serial transport in the config")
        if self._serial is None:
            tr, _ = self.transcript("console.jsonl")
            raw = self.folder.open_stream("console.raw", "application/octet-stream")
            self._stack.callback(self.folder.adopt, raw)
            drv = SerialDriver(self.device.serial, tr, raw, self.device_name)
            self._stack.callback(drv.close)
            drv.open()
            self._serial = drv
        return self._serial

    def rig_endpoints(self) -> list[tuple[tuple[str, int], tuple[str, int]]]:
        """(local, remote) of every network connection the rig's own drivers opened to the device
        in this scenario (its SSH sessions): control traffic, not the device's own."""
        return list(self._ssh.endpoints) if self._ssh is not None else []

    def evidence_of(self, *names: str) -> list[str]:
        """Bundle paths of this scenario's artifacts with the given file names."""
        return [f"{self.folder.rel_dir}/{n}" for n in names]

    def close(self) -> None:
        """Close drivers and seal every transcript, even after an error (idempotent, and safe from
        two threads: the engine at a deadline and the scenario's own thread)."""
        with self._closing:
            self._stack.close()


def hand_over(ctx: ScenarioContext, action: str, data: bytes, signature: bytes | None, upload_dir: str, name: str,
              work: Path) -> tuple[str, str]:
    """Put a file (and its detached signature, as ``<file>.sig``) where the action ``action``
    takes it: uploaded over SFTP to ``upload_dir/name`` for an action via ssh, a private
    bench-host file in ``work`` otherwise. Returns the file's path and the signature's ("" when
    there is none), for the action's placeholders. Raises :class:`DeviceError` from the upload."""
    if ctx.device.actions[action].via == "ssh":
        path = f"{upload_dir.rstrip('/')}/{name}"
        ctx.ssh().put(data, path)
        if signature is not None:
            ctx.ssh().put(signature, path + ".sig")
    else:
        path = str(work / name)
        Path(path).write_bytes(data)
        if signature is not None:
            Path(path + ".sig").write_bytes(signature)
    return path, (path + ".sig" if signature is not None else "")


def grabbable_streams(ctx: ScenarioContext) -> list[CameraStream]:
    """The device's camera streams the rig can grab frames from (http, https, rtsp, rtsps,
    device). Each other configured output (a ``file://`` recording) is declared as a part
    that was not observed, named and saying why: an output nobody looked at never passes."""
    from drivers.stream import GRAB_SCHEMES

    out = []
    for s in ctx.device.camera.streams if ctx.device.camera else []:
        scheme = s.url.split(":", 1)[0]
        if scheme in GRAB_SCHEMES:
            out.append(s)
        else:
            ctx.part(f"output {s.name}", f"{s.url}", kind="stream-not-checked", interface="camera", path=s.url).unobserved(
                f"{s.name}: {scheme}:// outputs are not grabbed ({', '.join(GRAB_SCHEMES)} are): this output was not checked")
    return out


def run_action(ctx: ScenarioContext, name: str, check: bool = True, **values: str) -> tuple[int, str]:
    """Trigger the device action ``name`` from the config; return (exit status, output).

    Raises :class:`DeviceError` if the action is not configured or times out, and (with
    ``check``) if it exits with a status other than the configured ``expect_exit``.
    """
    action: Action | None = ctx.device.actions.get(name)
    if action is None:
        raise DeviceError(f"{ctx.device_name}: action {name!r} is not configured")
    try:
        rendered = action.render(**values)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        given = ", ".join("{" + k + "}" for k in sorted(values)) or "none"
        raise DeviceError(f"{ctx.device_name}: action {name!r} cannot be rendered here ({type(exc).__name__}: {exc}); "
                          f"placeholders given to it: {given}") from None
    ctx.step(f"action {name}", via=action.via)
    if action.via == "ssh":
        res = ctx.ssh().run(str(rendered), timeout=action.timeout_s)
        status, out = res.exit_status, res.text
    elif action.via == "serial":
        status, out = ctx.serial().run_command(str(rendered), timeout=action.timeout_s)
    else:
        argv = list(rendered)
        tr, _ = ctx.transcript(f"host-{name}.jsonl")
        tr.record("tx", " ".join(argv), kind="argv")
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=action.timeout_s, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise DeviceError(f"{ctx.device_name}: host action {name!r}: {argv[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"{ctx.device_name}: host action {name!r} did not finish within {action.timeout_s:g} s") from None
        tr.record("rx", proc.stdout[-1_000_000:])
        tr.record("err", proc.stderr[-1_000_000:])
        tr.record("info", f"exit {proc.returncode} after {time.monotonic() - start:.3f} s")
        status, out = proc.returncode, proc.stdout.decode(errors="replace")
    if check and action.expect_exit is not None and status != action.expect_exit:
        raise DeviceError(f"{ctx.device_name}: action {name!r} exited {status} (expected {action.expect_exit}): {escape_bytes(out[-200:].encode())}")
    return status, out
