"""Default and well-known credentials the rig tries, in order, bounded, and the vendor's own.

Built-in lists, from public sources:

* the accounts of the Mirai botnet's scanner (``scanner.c`` of the source published in
  October 2016), which is what attackers try first on cameras and DVRs: root/xc3511,
  root/vizxv, root/juantech, admin/meinsm, support/support, 888888/888888 ...;
* camera vendors' documented factory accounts, as listed in their own manuals and in
  public default-password lists (admin/12345 of older Hikvision firmware, admin/admin and
  888888/888888 of Dahua, root/pass of Axis, admin/1234 and admin/4321 of Vivotek and
  Samsung, ubnt/ubnt of Ubiquiti, admin/9999 of Panasonic-style DVRs).

A lab adds the vendor's documented defaults with ``credentials: FILE`` in the bench or the
device config (``user:password`` per line, ``#`` comments); those are tried first. A
finding names an entry by its list and position (``simcam-r1.txt #1``, ``built-in http
#3``), never by its password, so evidence does not spread credentials that still work
on other units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """One account to try: user, password, and the list and position it came from."""

    user: str
    password: str = field(repr=False)
    source: str = "built-in"
    index: int = 0  # 1-based within its source

    @property
    def label(self) -> str:
        """How evidence names the entry: ``built-in http #3``, ``simcam-r1.txt #1``."""
        return f"{self.source} #{self.index}"


#: (user, password) tried at a serial or telnet login prompt, most common first. Each failure
#: costs the device's login delay (busybox: 3 s), so the list stays short.
CONSOLE_CREDENTIALS: tuple[tuple[str, str], ...] = (
    ("root", ""),
    ("root", "root"),
    ("admin", "admin"),
    ("root", "admin"),
    ("root", "12345"),
    ("root", "xc3511"),
    ("root", "vizxv"),
    ("default", "default"),
)


#: users the SSH "none" method is tried for (OpenSSH lets a user with an empty password in
#: with it when PermitEmptyPasswords is on): root and the accounts embedded firmware ships
NONE_AUTH_USERS: tuple[str, ...] = ("root", "admin", "user", "guest", "support", "default")

#: (user, password) tried against a web or RTSP login (Basic, Digest, HTML forms): fast to
#: try, so longer than the console list. Camera vendors' factory accounts first, then the
#: head of Mirai's list.
HTTP_CREDENTIALS: tuple[tuple[str, str], ...] = (
    ("admin", "admin"),
    ("admin", ""),
    ("admin", "12345"),
    ("admin", "password"),
    ("root", "root"),
    ("admin", "123456"),
    ("admin", "1234"),
    ("admin", "4321"),
    ("admin", "9999"),
    ("admin", "admin123"),
    ("admin", "meinsm"),
    ("root", "pass"),
    ("root", ""),
    ("root", "12345"),
    ("root", "xc3511"),
    ("root", "vizxv"),
    ("888888", "888888"),
    ("666666", "666666"),
    ("ubnt", "ubnt"),
    ("support", "support"),
    ("user", "user"),
    ("guest", "guest"),
    ("supervisor", "supervisor"),
    ("service", "service"),
)

#: (user, password) tried at an FTP server; anonymous first, as scanners do.
FTP_CREDENTIALS: tuple[tuple[str, str], ...] = (
    ("anonymous", "privrig@example.invalid"),
    ("ftp", "ftp"),
    ("admin", "admin"),
    ("root", "root"),
)

#: a credentials file larger than this, or with more entries, is refused (it is a list of
#: documented defaults, not a dictionary attack)
FILE_LIMIT_BYTES = 64 * 1024
FILE_LIMIT_ENTRIES = 200


class CredentialFileError(ValueError):
    """A credentials file that cannot be used; ``line`` is 1-based where a line is at fault."""

    def __init__(self, path: Path, line: int | None, message: str):
        super().__init__(message)
        self.path, self.line = path, line


def load_file(path: Path) -> list[Entry]:
    """The entries of a ``credentials:`` file (``user:password`` per line; blank lines and
    ``#`` comments skipped; an empty password is ``user:``). Raises
    :class:`CredentialFileError` naming the line for anything else."""
    try:
        raw = path.read_bytes()[: FILE_LIMIT_BYTES + 1]
    except OSError as exc:
        raise CredentialFileError(path, None, f"cannot read credentials file: {exc.strerror or exc}") from None
    if len(raw) > FILE_LIMIT_BYTES:
        raise CredentialFileError(path, None, f"larger than {FILE_LIMIT_BYTES >> 10} KiB: a list of documented defaults, not a wordlist")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CredentialFileError(path, None, f"not UTF-8 text (byte {exc.start})") from None
    out: list[Entry] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if ":" not in line:
            raise CredentialFileError(path, n, "expected user:password (an empty password is written user:)")
        user, _, password = line.partition(":")
        if not user.strip() or any(c.isspace() for c in user.strip()):
            raise CredentialFileError(path, n, "the user name is empty or holds spaces")
        out.append(Entry(user.strip(), password, path.name, len(out) + 1))
        if len(out) > FILE_LIMIT_ENTRIES:
            raise CredentialFileError(path, n, f"more than {FILE_LIMIT_ENTRIES} entries: a list of documented defaults, not a wordlist")
    return out


def entries(kind: str, extra: list[Path] | tuple[Path, ...] = ()) -> list[Entry]:
    """What to try for a ``kind`` of login (``http``, ``rtsp`` and ``form`` share the web list,
    ``console`` and ``telnet`` the console list, ``ftp``): the vendor's files first, then the
    built-in list, each account once."""
    builtin = {"console": CONSOLE_CREDENTIALS, "telnet": CONSOLE_CREDENTIALS, "ftp": FTP_CREDENTIALS}.get(kind, HTTP_CREDENTIALS)
    name = {"telnet": "console", "rtsp": "http", "form": "http"}.get(kind, kind)
    out: list[Entry] = []
    seen: set[tuple[str, str]] = set()
    for path in extra:
        for e in load_file(path):
            if (e.user, e.password) not in seen:
                seen.add((e.user, e.password))
                out.append(e)
    for i, (user, password) in enumerate(builtin, 1):
        if (user, password) not in seen:
            seen.add((user, password))
            out.append(Entry(user, password, f"built-in {name}", i))
    return out
