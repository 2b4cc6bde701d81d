"""Storage searches, run by busybox's own applets (the tools a device has) on a folder here."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from drivers.errors import DeviceError
from drivers.ssh import CommandResult
from drivers.storage import DeviceStorage
from tests.conftest import need_tools

TOKEN = "privrig-0123456789abcdef0123"
APPLETS = ("sh", "find", "xargs", "stat", "sha256sum", "grep", "sed", "head", "tr", "gzip", "timeout", "cut", "cp", "mv", "dd", "sync", "printf", "true", "cat", "blockdev", "strings", "setsid", "sleep")


class BusyboxShell:
    """Runs commands as a device's shell would: busybox sh with only busybox applets on PATH."""

    def __init__(self, bindir: Path):
        self.env = {"PATH": str(bindir), "LC_ALL": "C"}
        self.commands: list[str] = []

    def run(self, command: str, timeout: float | None = None, check: bool = False, max_output: int = 1 << 20, record_stdout: bool = True) -> CommandResult:
        self.commands.append(command)
        p = subprocess.run([str(Path(self.env["PATH"]) / "sh"), "-c", command], capture_output=True, timeout=timeout, env=self.env)
        return CommandResult(command, p.returncode, p.stdout[:max_output], p.stderr[:max_output], 0.0, len(p.stdout) > max_output)


@pytest.fixture
def shell(tmp_path: Path) -> BusyboxShell:
    need_tools("busybox")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    busybox = subprocess.run(["sh", "-c", "command -v busybox"], capture_output=True, text=True).stdout.strip()
    for a in APPLETS:
        (bindir / a).symlink_to(busybox)
    return BusyboxShell(bindir)


@pytest.fixture
def device(tmp_path: Path) -> Path:
    """A device's data: app files, a user folder named by the token, external storage, a FIFO."""
    d = tmp_path / "dev"
    (d / "data/app/cache").mkdir(parents=True)
    (d / "data/odd name\\dir").mkdir(parents=True)
    (d / f"data/users/u{TOKEN}").mkdir(parents=True)
    (d / "sd/DCIM").mkdir(parents=True)
    (d / "data/app/cache/c.bin").write_bytes(b"thumb " + TOKEN.encode() + b" end")
    (d / "data/odd name\\dir/snap.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01" + b"\0" * 100)
    (d / "data/app/app.conf").write_text("[cloud]\nadmin_password=Sup3rSecret!\nname=x\n")
    (d / "sd/DCIM/tiny").write_bytes(b"short")
    os.mkfifo(d / "data/app/pipe")  # never opened: a read would block the search
    return d


def test_snapshot_lists_sizes_and_hashes_of_regular_files_only(shell: BusyboxShell, device: Path) -> None:
    st = DeviceStorage(shell, timeout_s=20)
    listing = st.snapshot([f"{device}/data", f"{device}/sd", f"{device}/nothing"])
    assert listing.missing_roots == [f"{device}/nothing"] and not listing.truncated
    c = listing.files[f"{device}/data/app/cache/c.bin"]
    assert c.size == len(b"thumb " + TOKEN.encode() + b" end") and c.sha256 == hashlib.sha256((device / "data/app/cache/c.bin").read_bytes()).hexdigest()
    assert f"{device}/data/odd name\\\\dir/snap.jpg" in listing.files  # escaped losslessly (backslash doubled)
    assert f"{device}/data/app/pipe" not in listing.files and len(listing.files) == 4
    assert b"sha256\tsize\tpath" in listing.to_tsv() and st.bytes_moved > 0


def test_snapshot_is_cut_at_max_files(shell: BusyboxShell, tmp_path: Path) -> None:
    many = tmp_path / "many"
    many.mkdir()
    for i in range(300):
        (many / f"f{i:03d}").write_text(str(i))
    listing = DeviceStorage(shell, timeout_s=20, max_files=100).snapshot([str(many)])
    assert listing.truncated and len(listing.files) == 100


def test_token_found_in_names_and_contents(shell: BusyboxShell, device: Path) -> None:
    # binary files: the token after a NUL on the same "line" (busybox grep alone misses it), and in a path holding ": "
    (device / "data/app/db.bin").write_bytes(os.urandom(64).replace(b"\n", b"") + b"\0\0" + TOKEN.encode() + b"\0" + os.urandom(64))
    (device / "data/app/a: b.log").write_bytes(b"key: " + TOKEN.encode() + b"\n")
    st = DeviceStorage(shell, timeout_s=20)
    known = set(st.snapshot([str(device)]).files)
    hits = st.find_token([str(device)], TOKEN, known=known)
    assert hits.names == [f"{device}/data/users/u{TOKEN}"]
    assert sorted(hits.contents) == sorted([f"{device}/data/app/cache/c.bin", f"{device}/data/app/db.bin", f"{device}/data/app/a: b.log"])
    with pytest.raises(ValueError):
        DeviceStorage(shell).find_token([str(device)], "x'; rm -rf /")


def test_heads_are_split_by_count_across_xargs_batches(shell: BusyboxShell, tmp_path: Path, device: Path) -> None:
    st = DeviceStorage(shell, timeout_s=60)
    heads = st.heads([str(device)], 16)
    assert heads[f"{device}/data/odd name\\\\dir/snap.jpg"][:4] == b"\xff\xd8\xff\xe0"
    assert f"{device}/sd/DCIM/tiny" not in heads  # shorter than a head
    many = tmp_path / "batches"
    many.mkdir()
    expect = {}
    for i in range(3000):  # long names: several xargs batches
        name = many / (f"file-{i:05d}-" + "n" * 60)
        data = os.urandom(16) + b"\n==> trailer <==\n"  # bytes that would fool a header parser
        name.write_bytes(data)
        expect[str(name)] = data[:16]
    got = st.heads([str(many)], 16)
    assert got == expect


def test_grep_reads_matching_lines_with_numbers(shell: BusyboxShell, device: Path) -> None:
    rows = DeviceStorage(shell, timeout_s=20).grep([str(device)], "password[[:space:]]*=")
    assert rows == [(f"{device}/data/app/app.conf", 2, b"admin_password=Sup3rSecret!")]


def test_read_tamper_restore(shell: BusyboxShell, device: Path) -> None:
    st = DeviceStorage(shell, timeout_s=20)
    conf = f"{device}/data/app/app.conf"
    before = (device / "data/app/app.conf").read_bytes()
    assert st.read(conf, 8).data == before[:8] and st.read(conf, 8).ok
    assert st.read(f"{device}/data/app", 8).state == "not-a-file" and st.read(f"{device}/none", 8).state == "missing"
    info = st.file_info(conf)
    assert info is not None and info.size == len(before) and st.file_info(f"{device}/none") is None
    original = info.sha256
    tampered = st.tamper(conf, 3, b"PRIVRIG")
    assert tampered != original and (device / "data/app/app.conf").read_bytes()[3:10] == b"PRIVRIG"
    assert st.restore(conf) == original and (device / "data/app/app.conf").read_bytes() == before
    assert not (device / "data/app/app.conf.privrig-orig").exists()
    with pytest.raises(DeviceError):
        st.tamper(f"{device}/none", 0, b"X")


def test_raw_scan_counts_the_token_and_bounds_the_read(shell: BusyboxShell, tmp_path: Path) -> None:
    img = tmp_path / "disk.img"
    img.write_bytes(os.urandom(4096) + TOKEN.encode() + os.urandom(4096) + b"x" + TOKEN.encode() + b"\0" + os.urandom(1 << 20) + TOKEN.encode())
    st = DeviceStorage(shell, timeout_s=20)
    whole = st.scan_raw(str(img), TOKEN, 2 << 20)
    assert whole is not None and whole.hits == 3 and whole.bytes_read == whole.size == img.stat().st_size and not whole.partial
    head = st.scan_raw(str(img), TOKEN, 64 << 10)
    assert head is not None and head.hits == 2 and head.bytes_read == 64 << 10 and head.partial  # only the first 64 KiB read, and said so
    assert st.scan_raw(str(tmp_path / "absent"), TOKEN, 1 << 20) is None


def test_a_search_that_runs_too_long_is_killed_on_the_device(shell: BusyboxShell, device: Path) -> None:
    import time

    st = DeviceStorage(shell, timeout_s=1)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="killed on the device"):
        st._run("sleep 5 | cat; sleep 5", max_output=100)  # a pipeline: every process of it is killed, so the output ends
    assert time.monotonic() - t0 < 4
    (Path(shell.env["PATH"]) / "setsid").unlink()  # a device without setsid: timeout bounds it
    with pytest.raises(DeviceError, match="killed on the device"):
        st._run("sleep 5", max_output=100)


class NobodyShell(BusyboxShell):
    """The device shell of an SSH user that is not root (uid 65534): some files are out of reach."""

    def run(self, command: str, timeout: float | None = None, check: bool = False, max_output: int = 1 << 20, record_stdout: bool = True) -> CommandResult:
        import shutil

        p = subprocess.run([shutil.which("setpriv") or "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(Path(self.env["PATH"]) / "sh"), "-c", command],
                           capture_output=True, timeout=timeout, env=self.env)
        return CommandResult(command, p.returncode, p.stdout[:max_output], p.stderr[:max_output], 0.0, len(p.stdout) > max_output)


@pytest.fixture
def unreadable_device():
    """A device tree an unprivileged user can enter, with a folder and a shadow file it cannot read."""
    import shutil
    import tempfile

    need_tools("setpriv")
    top = Path(tempfile.mkdtemp(prefix="privrig-nobody-"))
    bindir = top / "bin"
    bindir.mkdir()
    busybox = subprocess.run(["sh", "-c", "command -v busybox"], capture_output=True, text=True).stdout.strip()
    for a in APPLETS:
        (bindir / a).symlink_to(busybox)
    (top / "data/open").mkdir(parents=True)
    (top / "data/locked").mkdir(parents=True)
    (top / "data/open/a.txt").write_text(f"x {TOKEN}\n")
    (top / "data/locked/b.txt").write_text(f"y {TOKEN}\n")
    (top / "etc").mkdir()
    (top / "etc/shadow").write_text("root:$1$abc$def:1::::::\n")
    os.chmod(top / "data/locked", 0o700)
    os.chmod(top / "etc/shadow", 0o600)
    for d in (top, top / "data", top / "data/open", top / "etc", bindir):
        os.chmod(d, 0o755)
    os.chmod(top / "data/open/a.txt", 0o644)
    try:
        yield top, NobodyShell(bindir)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_what_a_search_cannot_read_is_said_never_taken_as_empty(unreadable_device) -> None:
    top, shell = unreadable_device
    st = DeviceStorage(shell, timeout_s=20)
    listing = st.snapshot([f"{top}/data", f"{top}/nothing"])
    assert f"{top}/data/open/a.txt" in listing.files and f"{top}/data/locked/b.txt" not in listing.files
    assert listing.unreadable == [f"{top}/data/locked"] and listing.missing_roots == [f"{top}/nothing"]
    assert not listing.reach.complete and "unreadable" in listing.reach.describe()
    hits = st.find_token([f"{top}/data"], TOKEN)
    assert hits.contents == [f"{top}/data/open/a.txt"] and hits.reach.unreadable == [f"{top}/data/locked"]
    st.heads([f"{top}/data"], 4)
    assert st.last_reach.unreadable == [f"{top}/data/locked"]
    st.grep([f"{top}/data"], "privrig")
    assert st.last_reach.unreadable == [f"{top}/data/locked"]
    shadow = st.read(f"{top}/etc/shadow", 100)
    assert shadow.state == "unreadable" and shadow.data == b""  # not an empty file with no accounts


def test_a_listing_cut_short_in_transit_is_incomplete(shell: BusyboxShell, device: Path) -> None:
    from drivers.storage import SearchIncomplete

    import gzip

    st = DeviceStorage(shell, timeout_s=20)
    whole = gzip.compress(b"12 /data/a\n" * 1000)
    cut = [False]
    assert sum(1 for line in st._lines(whole, 1 << 20, cut) if line) == 1000 and not cut[0]
    with pytest.raises(SearchIncomplete, match="ends early"):
        list(st._lines(whole[: len(whole) // 2], 1 << 20, [False]))


def test_a_gzip_bomb_or_a_line_that_never_ends_cuts_the_listing_in_bounded_memory() -> None:
    """A hostile device's listing: 256 MiB of zeros in a small gzip, one line with no end. The
    listing is cut (incomplete), and unpacking holds about one chunk, not the bound."""
    import gzip
    import tracemalloc

    from drivers.storage import MAX_LINE

    st = DeviceStorage(None, timeout_s=20)  # type: ignore[arg-type]
    bomb = gzip.compress(bytes(256 << 20), 9)
    tracemalloc.start()
    cut = [False]
    lines = list(st._lines(bomb, 200 << 20, cut))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert cut[0] and all(len(x) <= MAX_LINE for x in lines)
    assert peak < 16 << 20, f"{peak >> 20} MiB"
    cut = [False]
    assert list(st._lines(b"7 /data/a\n" + b"x" * (3 * MAX_LINE), 1 << 30, cut)) == [b"7 /data/a"] and cut[0]


def test_a_name_with_a_newline_is_listed_whole_and_forges_no_line(shell: BusyboxShell, device: Path) -> None:
    """``forged\\n0 /etc/shadow`` would split into a listing line of its own: it is listed once,
    by its whole name (unhashed), and no ``/etc/shadow`` appears."""
    raw = os.path.join(os.fsencode(device / "data/app"), b"forged\n0 /etc/shadow")
    os.makedirs(os.path.dirname(raw))
    with open(raw, "wb") as fh:
        fh.write(b"x")
    listing = DeviceStorage(shell, timeout_s=20).snapshot([str(device / "data")])
    assert f"{device}/data/app/forged\n0 /etc/shadow" in listing.files  # (its folders hold the newline)
    assert not any(p.startswith("/etc") for p in listing.files), sorted(listing.files)
    assert f"{device}/data/app/app.conf" in listing.files and listing.files[f"{device}/data/app/app.conf"].sha256
