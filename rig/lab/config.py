"""The lab config: the broker, the history, the evidence store and the bench hosts.

```yaml
version: 1
lab:
  name: lab-a
  broker: {url: "redis://127.0.0.1:6379/0", password_env: PRIVRIG_BROKER_PASSWORD}
  history: {url: "postgresql+psycopg://rig@db.lab/privrig", password_env: PRIVRIG_DB_PASSWORD}
  evidence_store: /srv/privrig/store          # a folder every host mounts (NFS)
  max_attempts: 3                             # a job that kills its worker is given up after 3
  hosts:
    bench-a: {bench: benches/bench-a.yaml}    # the bench config the host owns
    bench-b: {bench: benches/bench-b.yaml}
```

Passwords never sit in the file (a URL with one is refused); a broker outside loopback needs
a password (``password_env``) or TLS (``rediss://``); relative paths are read against
the lab file's folder. Each host's bench config is loaded and checked too, and a device named
on two hosts is refused (a job must have one host to go to).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from rig.config import (NAME_RE, ConfigError, ConfigProblem, HistoryDb, LoadedConfig, _Model, load_config, read_config_text, read_yaml,
                        validate_model)


class Broker(_Model):
    """Where Celery's broker (Redis) is; its password comes from ``password_env``."""

    url: str
    password_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    #: seconds a delivered, unacknowledged job waits before Redis hands it out again (a worker
    #: that died): longer than a worker needs to come back, as short as a lab can wait
    visibility_timeout_s: int = Field(default=3600, ge=10, le=86400)

    @field_validator("url")
    @classmethod
    def _redis(cls, v: str) -> str:
        if not re.match(r"^rediss?://", v):
            raise ValueError("the broker is Redis: redis://HOST:PORT/DB (or rediss:// for TLS)")
        if re.match(r"^[^:]+://[^/@]*:[^/@]+@", v):
            raise ValueError("no password in the URL: name an environment variable in password_env")
        return v

    @model_validator(mode="after")
    def _guarded(self) -> "Broker":
        """Outside loopback the broker carries the lab's jobs and results over the network: a
        plain ``redis://`` with no password lets anyone on it forge a result or take a job."""
        if self.url.startswith("redis://") and self.password_env is None and not _loopback(self.url):
            raise ValueError(f"the broker {self.url} is outside loopback with no password: set password_env "
                             "(Redis requirepass) or use rediss:// (TLS)")
        return self

    def resolved_url(self) -> str:
        """The URL with the password from the environment (never logged)."""
        import os

        if self.password_env is None:
            return self.url
        pw = os.environ.get(self.password_env)
        if pw is None:
            raise ConfigError([ConfigProblem("lab.broker.password_env", None, None, "", f"environment variable {self.password_env} is not set")])
        from urllib.parse import quote

        scheme, rest = self.url.split("://", 1)
        rest = rest.split("@", 1)[-1]
        return f"{scheme}://:{quote(pw, safe='')}@{rest}"


def _loopback(url: str) -> bool:
    """The URL's host is this machine's loopback (127.0.0.0/8, ::1, localhost) or a Unix socket."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LabHost(_Model):
    bench: Path


class LabInfo(_Model):
    name: Annotated[str, Field(pattern=NAME_RE)]
    broker: Broker
    history: HistoryDb
    evidence_store: Path
    hosts: dict[Annotated[str, Field(pattern=NAME_RE)], LabHost] = Field(min_length=1)
    #: attempts a job gets (a worker that died mid-job is one): then it is recorded as given up,
    #: so a job that kills its worker does not power-cycle or flash a device forever
    max_attempts: int = Field(default=3, ge=1, le=20)


class LabFile(_Model):
    version: Literal[1] = 1
    lab: LabInfo


@dataclass
class LoadedLab:
    """A validated lab config, with each host's bench config loaded."""

    path: Path
    sha256: str
    lab: LabInfo
    benches: dict[str, LoadedConfig] = field(default_factory=dict)

    def host_of(self, device: str) -> str | None:
        """The host whose bench has ``device``."""
        return next((h for h, cfg in self.benches.items() if device in cfg.bench.devices), None)

    def devices(self) -> dict[str, str]:
        """Every device of the lab and its host."""
        return {d: h for h, cfg in self.benches.items() for d in cfg.bench.devices}


def is_lab_text(text: str) -> bool:
    """The file is a lab config (its top level has ``lab:``), not a bench config."""
    return bool(re.search(r"(?m)^lab\s*:", text))


def load_lab(path: str | Path) -> LoadedLab:
    """Read and validate the lab config at ``path`` and every bench config it names. Raises
    :class:`ConfigError`, each line naming a file, line and field."""
    p = Path(path)
    fname = str(p)
    text = read_config_text(p)
    data, marks = read_yaml(text, fname)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(fname, 1, 1, "", "a lab config is a YAML mapping with lab:")])
    cfg: LabFile = validate_model(LabFile, data, marks, fname)
    info = cfg.lab
    base = p.parent
    info = info.model_copy(update={"evidence_store": info.evidence_store if info.evidence_store.is_absolute() else (base / info.evidence_store).resolve(),
                                   "hosts": {h: v.model_copy(update={"bench": v.bench if v.bench.is_absolute() else (base / v.bench).resolve()})
                                             for h, v in info.hosts.items()}})
    lab = LoadedLab(p, hashlib.sha256(text.encode()).hexdigest(), info)
    problems: list[ConfigProblem] = []
    owner: dict[str, str] = {}
    for host, h in info.hosts.items():
        try:
            bench = load_config(h.bench)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        lab.benches[host] = bench
        for dev in bench.bench.devices:
            if dev in owner:
                line, col = marks.locate(("lab", "hosts", host, "bench"))
                problems.append(ConfigProblem(fname, line, col, f"lab.hosts.{host}.bench",
                                              f"device {dev!r} is on host {owner[dev]!r} too: a device has one host (rename one of them)"))
            else:
                owner[dev] = host
    if problems:
        raise ConfigError(problems)
    return lab
