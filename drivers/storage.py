"""Storage on the device: listings, canary searches, file heads and raw-device scans, each
run on the device in one shell session with the tools a busybox device has.

Guarantees:

* Every search is one command over the device's shell (``find``, ``xargs``, ``stat``,
  ``sha256sum``, ``grep``, ``head``; ``gzip``, ``setsid`` and ``timeout`` when the device has
  them), bounded on the device (its whole process group killed at ``search_timeout_s``) and
  on the rig by the SSH deadline.
* It never descends into ``/dev``, ``/proc`` or ``/sys`` (pruned by path, and ``-xdev``
  keeps each search on its root's filesystem), and never opens anything but regular files;
  a raw block device is read only by :meth:`DeviceStorage.scan_raw`, for a device the
  config lists, and only up to the configured number of bytes.
* Paths and values from the config are shell-quoted; nothing the device sends is put
  into a command. Device output is bounded (``max_output``), decompressed in chunks with a
  bound (a gzip bomb costs one chunk; a line over :data:`MAX_LINE` is dropped and the listing
  marked cut), and paths are kept as escaped text (``\\xNN`` for bytes that are not UTF-8). A
  path holding a newline is listed whole (NUL-separated, unhashed): it cannot forge a line.
* ``bytes_moved`` counts what crossed the link for these searches (commands and output).
* An incomplete answer is never a complete one: a search killed on the device (exit 137,
  or no exit status at all when sshd reports the signal), a listing whose compressed stream
  ends early, or a read the device refused raises :class:`SearchIncomplete` or says so in
  its result (roots that do not exist, folders the search could not read, files that could
  not be read, the bytes a raw scan read of how many).
"""

from __future__ import annotations

import re
import shlex
import zlib
from dataclasses import dataclass, field
from typing import Iterator, Protocol

from drivers.errors import DeviceError
from drivers.transcript import escape_bytes

#: the prune expression every find starts with
PRUNE = r"\( -path /dev -o -path /proc -o -path /sys \) -prune -o"
#: bytes per listed file a listing may take, at most (path, size and hash lines)
BYTES_PER_FILE = 1024
#: the longest listing line kept (two paths of PATH_MAX and a hash); a longer one is dropped
MAX_LINE = 2 * 4096 + 128


class Shell(Protocol):
    """What the storage searches need from a transport: :meth:`drivers.ssh.SshDriver.run`."""

    def run(self, command: str, timeout: float | None = None, check: bool = False, max_output: int = ...,
            record_stdout: bool = True): ...  # noqa: ANN201 - a CommandResult


@dataclass(frozen=True)
class FileEntry:
    """One regular file in a listing."""

    path: str
    size: int | None
    sha256: str | None


class SearchIncomplete(DeviceError):
    """A search on the device did not run to its end (killed by its timeout, cut short)."""

    kind = "search-incomplete"


@dataclass
class Reach:
    """What a search over roots could not reach: roots that do not exist, folders it could not read."""

    missing_roots: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every root existed and every folder under it was read."""
        return not self.missing_roots and not self.unreadable

    def describe(self) -> str:
        """One line: what was not reached."""
        bits = []
        if self.missing_roots:
            bits.append(f"missing root(s) {', '.join(self.missing_roots[:5])}")
        if self.unreadable:
            bits.append(f"{len(self.unreadable)} unreadable folder(s) or file(s) such as {', '.join(self.unreadable[:3])}")
        return "; ".join(bits) or "everything reached"


@dataclass
class Listing:
    """Regular files under the searched roots, with sizes and SHA-256 (as the device computed them)."""

    files: dict[str, FileEntry] = field(default_factory=dict)
    missing_roots: list[str] = field(default_factory=list)
    truncated: bool = False
    unreadable: list[str] = field(default_factory=list)  # folders or files find could not read

    @property
    def reach(self) -> Reach:
        """The roots and folders this listing did not cover."""
        return Reach(list(self.missing_roots), list(self.unreadable))

    def to_tsv(self) -> bytes:
        """``sha256<TAB>size<TAB>path`` per file, sorted by path: the artifact form."""
        rows = [f"{e.sha256 or '-'}\t{'' if e.size is None else e.size}\t{e.path}" for e in sorted(self.files.values(), key=lambda e: e.path)]
        return ("\n".join(["# sha256\tsize\tpath", *rows]) + "\n").encode()


@dataclass
class TokenHits:
    """Where the canary token was found: in names (files or directories) and in file contents,
    and what the search could not reach."""

    names: list[str] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)
    reach: Reach = field(default_factory=Reach)

    @property
    def paths(self) -> set[str]:
        """Every path that carries the token, by name or content."""
        return set(self.names) | set(self.contents)


@dataclass(frozen=True)
class FileRead:
    """One file read on the device: ``ok`` (with its first bytes), ``missing``, ``not-a-file``
    (a directory, a symlink, a device node: never opened) or ``unreadable`` (the device refused)."""

    path: str
    state: str
    data: bytes = b""

    @property
    def ok(self) -> bool:
        """The file was read."""
        return self.state == "ok"

    @property
    def why(self) -> str:
        """Why the file was not read, in words (empty when it was)."""
        return {"ok": "", "missing": "it does not exist on the device", "not-a-file": "it is not a regular file (a directory, link or device node)",
                "unreadable": "the device would not let the SSH user read it"}.get(self.state, self.state)


@dataclass(frozen=True)
class RawScan:
    """A raw device read for the canary: occurrences, bytes read, the device's size (``None``: unknown)."""

    device: str
    hits: int
    bytes_read: int
    size: int | None

    @property
    def partial(self) -> bool:
        """Only the first part of the device was read (``raw_scan_mb``)."""
        return self.size is None or self.bytes_read < self.size

    def to_dict(self) -> dict:
        """JSON-ready form (``residue.json``)."""
        return {"hits": self.hits, "bytes_read": self.bytes_read, "size": self.size, "partial": self.partial}


#: find's complaint about a folder or file it could not read (busybox and GNU wording)
_FIND_DENIED = re.compile(rb"^(?:find|head|grep|strings|sha256sum|stat): (?:'|\xe2\x80\x98)?(/[^\n]*?)(?:'|\xe2\x80\x99)?: (?:Permission denied|Operation not permitted)\s*$", re.M)


def _reach(stderr: bytes) -> Reach:
    """Missing roots (``#missing ROOT`` markers the scripts print on stderr) and what find and the
    other tools could not read, from a search's stderr."""
    r = Reach()
    for line in stderr.split(b"\n"):
        if line.startswith(b"#missing "):
            r.missing_roots.append(_path(line[9:]))
    r.unreadable = list(dict.fromkeys(_path(m.group(1)) for m in _FIND_DENIED.finditer(stderr)))[:1000]
    return r


def _quote_all(paths: list[str]) -> str:
    return " ".join(shlex.quote(p) for p in paths)


def _path(raw: bytes) -> str:
    return escape_bytes(raw)


def _check_token(token: str) -> None:
    """A canary token goes into a command: it may hold letters, digits and dashes only."""
    if not re.fullmatch(r"[A-Za-z0-9-]{8,64}", token):
        raise ValueError("a canary token is 8-64 letters, digits and dashes")


def _strings_path(line: bytes, known: set[str] | None) -> str | None:
    """The file a ``strings -f`` line (``PATH: TEXT``) came from: the longest prefix before a
    ``": "`` that ``known`` lists, else the text before the first ``": "``."""
    cuts = [m.start() for m in re.finditer(rb": ", line)]
    if known:
        for c in reversed(cuts):
            if _path(line[:c]) in known:
                return _path(line[:c])
    return _path(line[:cuts[0]]) if cuts else None


class DeviceStorage:
    """Storage searches on one device (see the module docstring for the guarantees)."""

    def __init__(self, shell: Shell, timeout_s: float = 300.0, max_files: int = 200_000):
        self.shell = shell
        self.timeout_s = timeout_s
        self.max_files = max_files
        self.bytes_moved = 0
        #: what the last :meth:`heads` or :meth:`grep` could not reach
        self.last_reach = Reach()

    # -- plumbing ---------------------------------------------------------------------
    def _run(self, script: str, max_output: int, record_stdout: bool = True) -> tuple[int, bytes, bytes]:
        """Run ``script`` with ``sh`` on the device under ``timeout -s KILL`` (when the device
        has it); returns (status, stdout, stderr). Raises :class:`SearchIncomplete` when the
        search did not end by itself: killed by the timeout, or ended with no exit status.

        The timed script runs as a child of an outer shell, which reports how it ended: with
        ``exec`` the killed process would be sshd's own child, and sshd reports a death by
        signal as ``exit-signal``, which paramiko shows as no exit status at all (-1)."""
        q = shlex.quote(script)
        t = int(self.timeout_s)
        command = (
            # its own session, so the deadline kills the whole pipeline (find | xargs | sha256sum),
            # not only its shell: an orphaned pipeline would go on loading the device and hold the
            # channel open. Without setsid, timeout; without either, no device-side bound
            f"if command -v setsid >/dev/null 2>&1; then setsid sh -c {q} & pid=$!; "
            f"( sleep {t}; kill -KILL -$pid ) >/dev/null 2>&1 </dev/null & killer=$!; wait $pid; rc=$?; kill $killer 2>/dev/null; "
            f"elif timeout -s KILL 5 true 2>/dev/null; then timeout -s KILL {t} sh -c {q}; rc=$?; "
            f"else sh -c {q}; rc=$?; fi; "
            "echo \"#privrig-exit $rc\" >&2; exit $rc")
        res = self.shell.run(command, timeout=self.timeout_s + 15, max_output=max_output, record_stdout=record_stdout)
        self.bytes_moved += len(command) + len(res.stdout) + len(res.stderr)
        if res.exit_status in (137, -9) or b"#privrig-exit 137" in res.stderr:
            raise SearchIncomplete(f"storage search killed on the device after {t} s (storage.search_timeout_s): its answer is incomplete")
        if res.exit_status == -1 or b"#privrig-exit " not in res.stderr:
            raise SearchIncomplete("storage search ended without an exit status (killed by a signal, or the session dropped): "
                                   "its answer is incomplete")
        return res.exit_status, res.stdout, res.stderr

    def _lines(self, data: bytes, limit: int, cut: list[bool]) -> Iterator[bytes]:
        """The lines of ``data`` (gunzipped first if it is gzip), read in chunks: at most ``limit``
        bytes unpacked, a line longer than :data:`MAX_LINE` dropped; either sets ``cut[0]``. The
        unpacked text is never held whole, so a gzip bomb costs one chunk of memory, not ``limit``."""
        if not data.startswith(b"\x1f\x8b"):
            chunks: Iterator[bytes] = iter([data])
        else:
            chunks = self._gunzip_chunks(data)
        rest, total = b"", 0
        for chunk in chunks:
            total += len(chunk)
            if total > limit:
                cut[0] = True
                chunk = chunk[:max(0, len(chunk) - (total - limit))]
            rest += chunk
            *whole, rest = rest.split(b"\n")
            yield from whole
            if len(rest) > MAX_LINE:  # a "line" that never ends (zeros): dropped, and the listing is cut
                cut[0], rest = True, b""
            if total > limit:
                return
        if rest:
            yield rest

    @staticmethod
    def _gunzip_chunks(data: bytes) -> Iterator[bytes]:
        """``data`` gunzipped, 1 MiB at a time, lazily: the caller's bound stops the unpacking."""
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = data
        while True:
            try:
                chunk = d.decompress(pending, 1 << 20)
            except zlib.error as exc:
                raise SearchIncomplete(f"the device's compressed listing is corrupt: {exc}") from None
            pending = d.unconsumed_tail
            if chunk:
                yield chunk
            if not pending and (d.eof or not chunk):
                break
        if not d.eof:
            raise SearchIncomplete("the device's compressed listing ends early (cut short): the listing is incomplete")

    # -- listings ---------------------------------------------------------------------
    def snapshot(self, roots: list[str]) -> Listing:
        """Every regular file under ``roots`` with its size and SHA-256, in one session.

        A root that does not exist is listed in ``missing_roots``; a listing longer than
        ``max_files`` files is cut and marked ``truncated``."""
        # a name holding a newline would split its stat and sha256sum lines (and could forge a
        # line of its own): such files are listed after a marker line, NUL-separated, unhashed
        script = "\n".join([
            "nl=$(printf '\\n_'); nl=${nl%_}",
            f"for r in {_quote_all(roots)}; do",
            '  if [ ! -d "$r" ]; then printf "#missing %s\\n" "$r" >&2; continue; fi',
            f'  find "$r" -xdev {PRUNE} -type f ! -path "*$nl*" -print0 | xargs -0 -r sh -c \'stat -c "%s %n" "$@"; sha256sum "$@"\' sh',
            "done",
            'printf "\\n#newline-names\\n"',
            f"for r in {_quote_all(roots)}; do",
            f'  [ -d "$r" ] && find "$r" -xdev {PRUNE} -type f -path "*$nl*" -print0',
            "done",
        ])
        limit = self.max_files * BYTES_PER_FILE
        script = f"( {script} ) | if command -v gzip >/dev/null 2>&1; then gzip -1 -c; else cat; fi"
        _, out, err = self._run(script, max_output=limit, record_stdout=False)
        cut = [len(out) >= limit]
        reach = _reach(err)
        sizes: dict[bytes, int | None] = {}
        hashes: dict[bytes, str] = {}
        newline_names: list[bytes] = []
        lines = self._lines(out, limit, cut)
        for line in lines:
            if line == b"#newline-names":
                newline_names = b"\n".join(lines).split(b"\0")
                break
            if len(sizes) + len(hashes) > 2 * self.max_files:
                cut[0] = True
                break
            if len(line) > 66 and line[64:66] == b"  " and re.fullmatch(rb"[0-9a-f]{64}", line[:64]):
                hashes[line[66:]] = line[:64].decode()
            else:
                m = re.match(rb"(\d+) (/.*)", line, re.S)
                if m:
                    sizes[m.group(2)] = int(m.group(1))
        for raw in newline_names:
            if raw.startswith(b"/") and len(raw) <= MAX_LINE:
                sizes.setdefault(raw, None)
        listing = Listing(truncated=cut[0], missing_roots=reach.missing_roots, unreadable=reach.unreadable)
        for raw in list(sizes) + [h for h in hashes if h not in sizes]:
            if len(listing.files) >= self.max_files:
                listing.truncated = True
                break
            p = _path(raw)
            listing.files[p] = FileEntry(p, sizes.get(raw), hashes.get(raw))
        return listing

    def find_token(self, roots: list[str], token: str, known: set[str] | None = None) -> TokenHits:
        """Files and directories whose name holds ``token``, and regular files whose bytes do.

        Contents are searched with ``strings -f`` piped to ``grep -F``: busybox ``grep``
        stops reading a line at a NUL byte, so a token after a NUL in a binary file would be
        missed (``grep -lF`` is the fallback on a device without ``strings``). ``known``
        (the paths of a listing just taken) lets a ``strings`` line be split into path and
        text exactly, even for a path holding ``": "``."""
        _check_token(token)
        script = "\n".join([
            "if command -v strings >/dev/null 2>&1; then how=s; else how=g; fi",
            f"for r in {_quote_all(roots)}; do",
            '  if [ ! -d "$r" ]; then printf "#missing %s\\n" "$r" >&2; continue; fi',
            f'  find "$r" -xdev {PRUNE} -name "*{token}*" -print | sed "s/^/N /"',
            '  if [ $how = s ]; then',
            f'    find "$r" -xdev {PRUNE} -type f -print0 | xargs -0 -r strings -f -n {len(token)} | grep -F -- {token} | cut -b 1-4096 | sed "s/^/S /"',
            "  else",
            f'    find "$r" -xdev {PRUNE} -type f -print0 | xargs -0 -r grep -lsF -- {token} | sed "s/^/C /"',
            "  fi",
            "done",
        ])
        _, out, err = self._run(script, max_output=self.max_files * 512)
        hits = TokenHits(reach=_reach(err))
        for line in out.split(b"\n"):
            if line.startswith(b"N /"):
                hits.names.append(_path(line[2:]))
            elif line.startswith(b"C /"):
                hits.contents.append(_path(line[2:]))
            elif line.startswith(b"S /"):
                path = _strings_path(line[2:], known)
                if path is not None and path not in hits.contents:
                    hits.contents.append(path)
        return hits

    def scan_raw(self, device: str, token: str, max_bytes: int) -> RawScan | None:
        """How many times ``token`` occurs in the first ``max_bytes`` of the raw block
        ``device``, how many bytes were read and how large the device is (``None``: the device
        cannot be read). Bytes are split at every byte that cannot be in a token, so no line
        the device's grep holds grows large."""
        _check_token(token)
        d = shlex.quote(device)
        # flush first: what the filesystem wrote must be on the device, and no stale cached
        # block of an earlier raw read may stand in for it
        script = (f'[ -b {d} ] || [ -f {d} ] || {{ echo "#unreadable"; exit 0; }}; '
                  f'size=$(blockdev --getsize64 {d} 2>/dev/null || stat -L -c %s {d} 2>/dev/null); echo "#size ${{size:-?}}"; '
                  f'sync; [ -b {d} ] && blockdev --flushbufs {d} 2>/dev/null; '
                  f'{{ head -c {int(max_bytes)} {d} || echo "#head-failed" >&2; }} | tr -c "A-Za-z0-9-" "\\n" | grep -cF -- {token}')
        _, out, err = self._run(script, max_output=4096)
        text = out.decode(errors="replace").strip()
        if text.startswith("#unreadable") or b"#head-failed" in err:
            return None
        m = re.fullmatch(r"#size (\d+|\?)\s+(\d+)", text)
        if not m:
            return None
        size = int(m.group(1)) if m.group(1).isdigit() else None
        return RawScan(device, int(m.group(2)), min(int(max_bytes), size) if size is not None else int(max_bytes), size)

    # -- contents ---------------------------------------------------------------------
    def heads(self, roots: list[str], n: int = 16) -> dict[str, bytes]:
        """The first ``n`` bytes of every regular file of at least ``n`` bytes under ``roots``.

        Per ``xargs`` batch the device sends the names (NUL-separated, ended by an empty
        name) and then exactly ``n`` bytes per name, from one ``head`` process: the order
        is the same, so heads are split by count, never by searching device bytes."""
        script = "\n".join([
            f"for r in {_quote_all(roots)}; do",
            '  if [ ! -d "$r" ]; then printf "#missing %s\\n" "$r" >&2; continue; fi',
            f'  find "$r" -xdev {PRUNE} -type f -size +{n - 1}c -print0 | '
            f'xargs -0 -r sh -c \'printf "B"; printf "%s\\0" "$@"; printf "\\0"; head -q -c {n} "$@"\' sh',
            "done",
        ])
        limit = self.max_files * (n + 256)
        _, out, err = self._run(script, max_output=limit, record_stdout=False)
        self.last_reach = _reach(err)
        heads: dict[str, bytes] = {}
        pos = 0
        while pos < len(out) and out[pos:pos + 1] == b"B":
            end = out.find(b"\0\0", pos + 1)
            if end < 0:
                break
            names = out[pos + 1:end].split(b"\0")
            body = out[end + 2:end + 2 + n * len(names)]
            if len(body) < n * len(names):
                # cut short (a file could not be read, shrank, or the output bound): the rest is not trusted
                self.last_reach.unreadable.append(f"(a batch of {len(names)} files from {_path(names[0])} on was cut short; it and the rest were not examined)")
                break
            for i, raw in enumerate(names):
                heads[_path(raw)] = body[i * n:(i + 1) * n]
            pos = end + 2 + n * len(names)
        return heads

    def grep(self, roots: list[str], pattern: str, max_per_file: int = 20, max_line: int = 400) -> list[tuple[str, int, bytes]]:
        """Lines matching the extended regular expression ``pattern`` (case-insensitive) in
        regular files under ``roots`` up to 1 MiB: (path, line number, at most ``max_line``
        bytes of the line)."""
        script = "\n".join([
            f"for r in {_quote_all(roots)}; do",
            '  if [ ! -d "$r" ]; then printf "#missing %s\\n" "$r" >&2; continue; fi',
            f'  find "$r" -xdev {PRUNE} -type f -size -1025k -print0 | '
            f"xargs -0 -r grep -HniE -m {int(max_per_file)} -e {shlex.quote(pattern)} | cut -b 1-{int(max_line) + 256}",
            "done",
        ])
        # the matching lines may hold the very secrets the caller looks for: kept off the
        # transcript (it notes their size); the caller keeps what it needs, masked
        _, out, err = self._run(script, max_output=16 << 20, record_stdout=False)
        self.last_reach = _reach(err)
        rows = []
        for line in out.split(b"\n"):
            m = re.match(rb"(/[^:]*):(\d+):(.*)", line, re.S)
            if m:
                rows.append((_path(m.group(1)), int(m.group(2)), m.group(3)[:max_line]))
        return rows

    def read(self, path: str, max_bytes: int) -> FileRead:
        """The first ``max_bytes`` of the regular file ``path``, or why it was not read
        (:class:`FileRead`: missing, not a regular file, or refused by the device)."""
        q = shlex.quote(path)
        script = (f'if [ -L {q} ] || {{ [ -e {q} ] && [ ! -f {q} ]; }}; then printf N; elif [ ! -e {q} ]; then printf M; '
                  f'elif [ ! -r {q} ]; then printf U; else printf F; head -c {int(max_bytes)} {q} || echo "#read-failed" >&2; fi')
        _, out, err = self._run(script, max_output=max_bytes + 16, record_stdout=False)
        if out.startswith(b"F") and b"#read-failed" not in err:
            return FileRead(path, "ok", out[1:])
        state = {b"N": "not-a-file", b"M": "missing"}.get(out[:1], "unreadable")
        return FileRead(path, state)

    def file_info(self, path: str) -> FileEntry | None:
        """Size and SHA-256 of the regular file ``path`` as the device computes them (``None``: missing)."""
        q = shlex.quote(path)
        _, out, _ = self._run(f"[ -f {q} ] && stat -c %s {q} && sha256sum {q}", max_output=4096)
        m = re.match(rb"(\d+)\n([0-9a-f]{64})\s", out)
        return FileEntry(path, int(m.group(1)), m.group(2).decode()) if m else None

    def tamper(self, path: str, offset: int, mark: bytes) -> str:
        """Keep a copy of ``path`` beside it (``<path>.privrig-orig``) and overwrite ``mark``
        at ``offset``; returns the SHA-256 of the tampered file. Raises DeviceError if the
        copy cannot be made (nothing is changed then)."""
        if not re.fullmatch(rb"[A-Za-z0-9 _-]{1,32}", mark):
            raise ValueError("the tamper mark is 1-32 plain characters")
        q, keep = shlex.quote(path), shlex.quote(path + ".privrig-orig")
        script = (f"cp -p {q} {keep} || exit 3; printf %s {shlex.quote(mark.decode())} | dd of={q} bs=1 seek={int(offset)} conv=notrunc 2>/dev/null "
                  f"|| {{ mv -f {keep} {q}; exit 4; }}; sync; sha256sum {q}")
        status, out, err = self._run(script, max_output=4096)
        m = re.match(rb"([0-9a-f]{64})\s", out)
        if status != 0 or not m:
            raise DeviceError(f"cannot tamper with {path} (exit {status}): {escape_bytes((err or out)[-200:])}")
        return m.group(1).decode()

    def restore(self, path: str) -> str | None:
        """Put back the copy :meth:`tamper` kept; returns the restored file's SHA-256."""
        q, keep = shlex.quote(path), shlex.quote(path + ".privrig-orig")
        _, out, _ = self._run(f"[ -f {keep} ] && mv -f {keep} {q} && sync; sha256sum {q}", max_output=4096)
        m = re.match(rb"([0-9a-f]{64})\s", out)
        return m.group(1).decode() if m else None
