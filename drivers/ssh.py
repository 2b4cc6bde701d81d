"""SSH driver (paramiko): run commands on a device whose host key is pinned.

Guarantees:

* The rig never trusts an unknown host key: the key the device shows must match the
  pin in the config (``host_key`` or ``known_hosts``), otherwise :class:`HostKeyMismatch`
  names both fingerprints and nothing is sent.
* No agent, no ``~/.ssh`` keys: only the key or password the config names.
* Every command has a deadline; a dropped link raises :class:`LinkLost`, a slow command
  :class:`CommandTimeout`; nothing blocks forever. A session found gone *between*
  commands is reopened once before the next one (nothing was in flight, so nothing runs
  twice); a command whose link drops while it runs is never retried.
* Every command and every byte of its output go into the transcript; output kept in
  memory is bounded (``max_output`` per stream).
* No OS descriptor is made for a channel (``Channel.fileno()`` is never called), so closing
  one, even mid-output, cannot race paramiko's transport thread onto a closed descriptor.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from drivers.errors import AuthFailed, CommandTimeout, DeviceError, HostKeyMismatch, LinkLost, Unreachable
from drivers.transcript import Transcript
from rig.config import SshTransport

MAX_OUTPUT = 4 * 1024 * 1024
#: how long a command's output loop waits between looks when nothing is ready
POLL_S = 0.02
#: bytes one look moves from a stream before the command's deadline is checked again
DRAIN_BYTES = 1 << 20


def key_fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:…`` fingerprint of an SSH public key, as ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: bytes
    stderr: bytes
    duration_s: float
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Pin:
    key_type: str | None
    blob: bytes | None
    fingerprint: str

    def matches(self, key: paramiko.PKey) -> bool:
        if self.blob is not None:
            return key.get_name() == self.key_type and key.asbytes() == self.blob
        return key_fingerprint(key) == self.fingerprint


def _pins(res: SshTransport) -> list[_Pin]:
    pins: list[_Pin] = []
    if res.host_key:
        if res.host_key.startswith("SHA256:"):
            pins.append(_Pin(None, None, res.host_key.rstrip("=")))
        else:
            ktype, b64 = res.host_key.split()[:2]
            try:
                blob = base64.b64decode(b64, validate=True)
            except ValueError:
                raise HostKeyMismatch(f"ssh.host_key of {res.host} is not valid base64") from None
            fp = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
            pins.append(_Pin(ktype, blob, fp))
    if res.known_hosts:
        hk = paramiko.HostKeys()
        try:
            hk.load(str(res.known_hosts))
        except OSError as exc:
            raise HostKeyMismatch(f"cannot read ssh.known_hosts {res.known_hosts}: {exc.strerror or exc}") from None
        name = res.host if res.port == 22 else f"[{res.host}]:{res.port}"
        entry = hk.lookup(name)
        if entry:
            for ktype in entry.keys():
                key = entry[ktype]
                pins.append(_Pin(ktype, key.asbytes(), key_fingerprint(key)))
        if not pins:
            raise HostKeyMismatch(f"{res.known_hosts} has no key for {name}; the rig will not connect to an unpinned host")
    return pins


class _PinnedPolicy(paramiko.MissingHostKeyPolicy):
    def __init__(self, pins: list[_Pin], where: str, transcript: Transcript):
        self.pins = pins
        self.where = where
        self.transcript = transcript
        self.seen: str | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.seen = f"{key.get_name()} {key_fingerprint(key)}"
        if any(p.matches(key) for p in self.pins):
            self.transcript.record("info", f"host key {self.seen} matches the pin")
            return
        pinned = ", ".join(p.fingerprint for p in self.pins)
        msg = (
            f"{self.where}: host key mismatch: the device shows {self.seen} but the config pins {pinned}; "
            "refusing to connect (device replaced, reflashed, or someone in the middle?)"
        )
        self.transcript.record("info", msg)
        raise HostKeyMismatch(msg)


class SshDriver:
    """An SSH session to one device. Use as a context manager or call :meth:`close`."""

    def __init__(self, resource: SshTransport, transcript: Transcript | None = None, device: str = "device"):
        self.res = resource
        self.device = device
        self.transcript = transcript or Transcript(None)
        self.where = f"{device} ssh {resource.user}@{resource.host}:{resource.port}"
        self._client: paramiko.SSHClient | None = None
        #: (local, remote) address of every TCP connection this driver opened: the rig's own
        #: control traffic, which a capture of the device must not count as the device's
        self.endpoints: list[tuple[tuple[str, int], tuple[str, int]]] = []

    # -- connection -------------------------------------------------------------------
    def connect(self) -> "SshDriver":
        """Open the session: pinned host key, then the configured key or password.

        Raises :class:`Unreachable`, :class:`HostKeyMismatch` or :class:`AuthFailed`
        with the reason; never prompts and never falls back to other credentials.
        """
        res = self.res
        pins = _pins(res)
        password = None
        if res.password_env:
            password = os.environ.get(res.password_env)
            if password is None and res.key_file is None:
                raise AuthFailed(f"{self.where}: environment variable {res.password_env} (ssh.password_env) is not set")
            if password:
                self.transcript.add_secret(password)
        if res.key_file is not None and not Path(res.key_file).is_file():
            raise AuthFailed(f"{self.where}: ssh.key_file {res.key_file} does not exist")
        client = paramiko.SSHClient()
        policy = _PinnedPolicy(pins, self.where, self.transcript)
        client.set_missing_host_key_policy(policy)
        self.transcript.record("info", f"connect {self.where}")
        t = res.connect_timeout_s
        try:
            client.connect(
                hostname=res.host,
                port=res.port,
                username=res.user,
                key_filename=str(res.key_file) if res.key_file else None,
                password=password,
                timeout=t,
                banner_timeout=t,
                auth_timeout=t,
                channel_timeout=t,
                look_for_keys=False,
                allow_agent=False,
            )
        except HostKeyMismatch:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            how = "key " + str(res.key_file) if res.key_file else f"password from {res.password_env}"
            raise AuthFailed(f"{self.where}: authentication refused ({how}): {exc}") from None
        except paramiko.SSHException as exc:
            client.close()
            if "not a valid" in str(exc).lower() or "private key" in str(exc).lower():
                raise AuthFailed(f"{self.where}: cannot use ssh.key_file {res.key_file}: {exc}") from None
            raise Unreachable(f"{self.where}: SSH handshake failed: {exc}") from None
        except (socket.timeout, TimeoutError):
            client.close()
            raise Unreachable(f"{self.where}: no answer within {t:g} s (device off, cable out or wrong address?)") from None
        except paramiko.ssh_exception.NoValidConnectionsError as exc:
            client.close()
            if all(getattr(e, "errno", None) == errno.ECONNREFUSED for e in exc.errors.values()):
                raise Unreachable(f"{self.where}: connection refused (no SSH server on that port)") from None
            why = "; ".join(sorted({getattr(e, "strerror", None) or str(e) for e in exc.errors.values()})) or str(exc)
            raise Unreachable(f"{self.where}: cannot connect: {why} (device off, unplugged or wrong address?)") from None
        except ConnectionRefusedError:
            client.close()
            raise Unreachable(f"{self.where}: connection refused (no SSH server on that port)") from None
        except OSError as exc:
            client.close()
            raise Unreachable(f"{self.where}: {exc.strerror or exc}") from None
        transport = client.get_transport()
        assert transport is not None
        if res.keepalive_s:
            transport.set_keepalive(res.keepalive_s)
        try:
            self.endpoints.append((transport.sock.getsockname()[:2], transport.sock.getpeername()[:2]))  # type: ignore[union-attr]
        except (OSError, AttributeError):
            pass
        self.transcript.record("info", f"authenticated as {res.user}")
        self._client = client
        return self

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self.transcript.record("info", "closed")

    def __enter__(self) -> "SshDriver":
        if self._client is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        t = self._client.get_transport() if self._client else None
        return bool(t and t.is_active())

    # -- commands ---------------------------------------------------------------------
    def _drain(self, ready, recv, direction: str, buf: bytearray, limit: int, record: bool = True) -> tuple[bool, bool]:  # type: ignore[no-untyped-def]
        """Move what one stream has ready into the transcript (unless ``record`` is off) and
        into ``buf`` (bounded); returns (anything read, anything dropped over ``limit``)."""
        got = dropped = False
        taken = 0
        while taken < DRAIN_BYTES and ready():  # bounded per call: a device that never stops sending still meets the deadline
            data = recv(65536)
            taken += len(data)
            if not data:
                break
            got = True
            if record:
                self.transcript.record(direction, data)
            room = max(0, limit - len(buf))
            buf += data[:room]
            dropped = dropped or len(data) > room
        return got, dropped

    def run(self, command: str, timeout: float | None = None, check: bool = False, max_output: int = MAX_OUTPUT,
            record_stdout: bool = True) -> CommandResult:
        """Run ``command`` in the device shell and return its exit status and output.

        Returns within ``timeout`` seconds (default: ``ssh.command_timeout_s``) or raises
        :class:`CommandTimeout`; raises :class:`LinkLost` if the session dies. With
        ``check`` a non-zero exit raises :class:`DeviceError` naming the command. Without
        ``record_stdout`` the transcript notes only how many bytes stdout carried: for bulk
        output (file listings) that the caller keeps as an artifact of its own.
        """
        if self._client is None:
            self.connect()
        assert self._client is not None
        timeout = timeout if timeout is not None else self.res.command_timeout_s
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            # no command is in flight, so nothing can run twice: open a new session once
            # (sshd restarted, a NAT dropped the flow); a device that stays away is LinkLost
            self.transcript.record("info", "SSH session is gone; reconnecting once before the next command")
            self.close()
            try:
                self.connect()
            except DeviceError as exc:
                raise LinkLost(f"{self.where}: SSH session is gone and reconnecting failed: {exc.reason}") from None
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                raise LinkLost(f"{self.where}: SSH session is gone")
        start = time.monotonic()
        deadline = start + timeout
        try:
            chan = transport.open_session(timeout=min(timeout, self.res.connect_timeout_s))
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise LinkLost(f"{self.where}: could not start command: {exc or type(exc).__name__}") from None
        self.transcript.record("tx", command, kind="exec")
        out, err = bytearray(), bytearray()
        truncated = False
        try:
            while True:
                got_out, cut_out = self._drain(chan.recv_ready, chan.recv, "rx", out, max_output, record_stdout)
                got_err, cut_err = self._drain(chan.recv_stderr_ready, chan.recv_stderr, "err", err, max_output)
                got = got_out or got_err
                truncated = truncated or cut_out or cut_err
                # the exit status can arrive before the last of the output (sshd sends it when the
                # command exits, and drains its pipes after): done at end-of-file, not at the status
                if chan.exit_status_ready() and (chan.eof_received or chan.closed) and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if not transport.is_active():
                    raise LinkLost(f"{self.where}: link dropped while running {command!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    chan.close()
                    self.transcript.record("info", f"timeout after {timeout:g} s; command abandoned")
                    raise CommandTimeout(f"{self.where}: command {command!r} did not finish within {timeout:g} s")
                if not got:
                    # never select() on the channel: Channel.fileno() makes an OS pipe that
                    # paramiko's transport thread writes to without a lock while close()
                    # closes it (paramiko #692, #2271): a write after close hits a closed or
                    # reused descriptor and kills the transport with "Bad file descriptor".
                    # Waiting on the channel's own event needs no descriptor at all.
                    chan.status_event.wait(min(POLL_S, remaining))
            status = chan.recv_exit_status()
            if status == -1:
                # no exit-status message: the link died, or the device killed the command
                # with a signal (paramiko does not report exit-signal). Tell them apart by
                # whether the transport survives.
                settle = time.monotonic() + 1.0
                while transport.is_active() and time.monotonic() < settle:
                    time.sleep(0.05)
                if not transport.is_active():
                    raise LinkLost(f"{self.where}: link dropped while running {command!r} (no exit status received)")
                self.transcript.record("info", "no exit status (command ended by a signal?)")
        finally:
            chan.close()
        dur = time.monotonic() - start
        if not record_stdout:
            self.transcript.record("info", f"{len(out)} bytes of stdout{' (truncated)' if truncated else ''}, kept by the caller as an artifact")
        self.transcript.record("info", f"exit {status} after {dur:.3f} s", exit=status)
        result = CommandResult(command, status, bytes(out), bytes(err), dur, truncated)
        if check and status != 0:
            raise DeviceError(f"{self.where}: {command!r} exited {status}: {escape_tail(result.stderr or result.stdout)}")
        return result


    def put(self, data: bytes, remote: str, timeout: float | None = None) -> None:
        """Write ``data`` to the device at ``remote`` over SFTP (an update image; the caller removes
        it after use). Raises :class:`LinkLost` if the session dies, :class:`DeviceError` if the
        device refuses the file."""
        if self._client is None:
            self.connect()
        assert self._client is not None
        self.transcript.record("tx", f"sftp put {remote} ({len(data)} bytes)")
        try:
            sftp = self._client.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise LinkLost(f"{self.where}: cannot open SFTP: {exc or type(exc).__name__}") from None
        try:
            chan = sftp.get_channel()
            if chan is not None:
                chan.settimeout(timeout or self.res.command_timeout_s)
            with sftp.open(remote, "wb") as fh:
                fh.set_pipelined(True)
                for i in range(0, len(data), 1 << 20):
                    fh.write(data[i:i + (1 << 20)])
        except (paramiko.SSHException, EOFError, TimeoutError) as exc:
            raise LinkLost(f"{self.where}: SFTP upload to {remote} failed: {exc or type(exc).__name__}") from None
        except OSError as exc:
            raise DeviceError(f"{self.where}: the device refused {remote}: {exc.strerror or exc}") from None
        finally:
            sftp.close()
        self.transcript.record("info", f"sftp put {remote}: done")


def escape_tail(data: bytes, limit: int = 200) -> str:
    """The last ``limit`` bytes of device output, safe to print on one line."""
    from drivers.transcript import escape_bytes

    return escape_bytes(data[-limit:]).replace("\n", "\\n").strip()
