"""The ``rig`` command line.

Exit codes (``shared/spec/results.md``): ``rig run`` 0 all passed, 1 a fail, 2 bad
usage or invalid config (nothing run), 3 error/inconclusive without fail, 4 the rig
crashed (bundle still readable, marked incomplete). ``rig verify``: 0 verified,
1 tampered, 2 not a bundle, 3 incomplete. Other commands: 0 done, 2 bad input,
1 the action failed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from rig import __version__
from rig.config import ConfigError, LoadedConfig, config_json_schema, load_config
from rig.progress import TerminalProgress, safe

DEFAULT_SIM_CONFIG = "hil_config/sim-bench.yaml"


_safe = safe  # one line of device-derived text, safe for a terminal


def _load_or_exit(path: str) -> LoadedConfig:
    return _or_exit(load_config, path)


def _load_lab_or_exit(path: str):  # noqa: ANN202 - a LoadedLab (imported lazily)
    from rig.lab.config import load_lab

    return _or_exit(load_lab, path)


def _or_exit(load, path: str):  # noqa: ANN001, ANN202 - a config loader and what it returns
    """``load(path)``, or each config problem on one line and exit 2."""
    try:
        return load(path)
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(f"rig: config error: {p}", err=True)
        sys.exit(2)


def _execute_and_exit(plan, quiet: bool, as_json: bool) -> None:  # noqa: ANN001 - a RunPlan (imported lazily)
    """Run ``plan`` with terminal progress, print the bundle path last, exit with the run's code."""
    from rig.engine import execute

    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        click.echo(f"rig: --out {plan.out_dir}: cannot create: {exc.strerror}", err=True)
        sys.exit(2)
    outcome = execute(plan, progress=TerminalProgress(quiet, as_json))
    if outcome.crash:
        click.echo(f"rig: run did not complete: {_safe(outcome.crash)}; bundle kept and marked incomplete", err=True)
    from rig.history import index_run

    warning = index_run(plan.config.bench.bench.history, plan.out_dir, outcome.record.to_dict(), outcome.bundle)
    if warning:
        click.echo(f"rig: warning: run not added to the history: {_safe(warning)}", err=True)
    click.echo(str(outcome.bundle))
    sys.exit(outcome.exit_code)


def _execution_options(f):  # noqa: ANN001, ANN202 - a click decorator
    """The options ``run`` and ``rerun`` share: where the bundle goes and how the run behaves."""
    for opt in reversed([
        click.option("--out", "out_dir", type=click.Path(file_okay=False), help="evidence folder (default bench.evidence_dir or ./evidence)"),
        click.option("-j", "--jobs", type=int, default=8, show_default=True, help="devices driven at once"),
        click.option("-q", "--quiet", is_flag=True, help="only warnings and the bundle path"),
        click.option("--json", "as_json", is_flag=True, help="progress as JSON lines on stderr"),
        click.option("--wait-lock", "wait_lock", type=float, default=0.0, show_default=True, metavar="SECONDS",
                     help="wait this long for a device another run holds (0: that device ends as error at once)"),
    ]):
        f = opt(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rig")
def main() -> None:
    """privrig: test edge AI devices against T/AI 110.1-2020 privacy and security clauses."""


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="bench config (YAML)")
@click.option("--device", "devices", multiple=True, help="device name from the config (repeatable; default all)")
@click.option("--scenario", "scenarios", multiple=True, help="scenario id (repeatable; default all)")
@_execution_options
def run(config_path: str, devices: tuple[str, ...], scenarios: tuple[str, ...], out_dir: str | None, jobs: int, quiet: bool, as_json: bool,
        wait_lock: float) -> None:
    """Run scenarios on devices; write one evidence bundle; print its path last."""
    from rig.engine import RunPlan

    cfg = _load_or_exit(config_path)
    try:
        plan = RunPlan.select(cfg, list(devices) or None, list(scenarios) or None, Path(out_dir) if out_dir else None, jobs, wait_lock)
    except ValueError as exc:
        click.echo(f"rig: {exc}", err=True)
        sys.exit(2)
    _execute_and_exit(plan, quiet, as_json)


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False, exists=True))
@click.option("--device", required=True, help="the device judged")
@click.option("--clause", required=True, help="a manual clause, e.g. 'T/AI 110.1-2020 6.2.1 c'")
@click.option("--verdict", required=True, type=click.Choice(["pass", "fail", "not-applicable"]))
@click.option("--note", required=True, help="what was examined and why the verdict")
@click.option("--by", "by", required=True, help="the technician's name")
@click.option("--photo", type=click.Path(dir_okay=False, exists=True), help="a photo (.jpg or .png) of what was examined")
def attest(bundle: str, device: str, clause: str, verdict: str, note: str, by: str, photo: str | None) -> None:
    """Record a technician's verdict on a manual clause into a sealed bundle, signed like the rest.
    Exit 0 recorded (the bundle verifies again), 2 refused (the message says why)."""
    from rig.attest import AttestError
    from rig.attest import attest as record_attestation

    try:
        att = record_attestation(_bundle_path(bundle), device, clause, verdict, note, by, Path(photo) if photo else None)
    except AttestError as exc:
        click.echo(f"rig: {_safe(exc)}", err=True)
        sys.exit(2)
    click.echo(f"attested {att.clause} on {att.device}: {att.verdict} by {_safe(att.by)} at {att.at}")


@main.command()
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="bench config (its history database and evidence folder)")
@click.option("--db", help="history database URL (overrides $PRIVRIG_HISTORY_URL and the config)")
@click.option("--device", help="the device to answer for")
@click.option("--clause", help="only this clause, e.g. 'T/AI 110.1-2020 6.2.3 c'")
@click.option("--scenario", help="only the clauses of this scenario")
@click.option("--index", "bundles", multiple=True, type=click.Path(file_okay=False, exists=True), metavar="BUNDLE",
              help="add bundles to the history first (repeatable; a run already there is replaced)")
@click.option("--json", "as_json", is_flag=True, help="the answer as JSON")
def history(config_path: str | None, db: str | None, device: str | None, clause: str | None, scenario: str | None, bundles: tuple[str, ...],
            as_json: bool) -> None:
    """Since when does a clause fail on a device, and on which firmware did it last pass.
    Exit 0 answered, 1 nothing recorded for the device, 2 bad input or unreachable database."""
    from rig.history import History, HistoryError

    if not device and not bundles:
        click.echo("rig: history needs --device (or --index BUNDLE)", err=True)
        sys.exit(2)
    cfg = _load_or_exit(config_path) if config_path else None
    evidence = (cfg.bench.bench.evidence_dir if cfg else None) or Path("evidence")
    try:
        store = History.for_config(cfg.bench.bench.history if cfg else None, evidence, db)
        for b in bundles:
            n = store.index_bundle(Path(b))
            click.echo(f"indexed {b}: {n} rows", err=True)
        answer = store.clause_history(device, clause, scenario) if device else []
    except HistoryError as exc:
        click.echo(f"rig: {_safe(exc)}", err=True)
        sys.exit(2)
    if not device:
        return
    if as_json:
        click.echo(json.dumps([a.to_dict() for a in answer], indent=1))
    else:
        for a in answer:
            fs = a.failing_since
            lp = a.last_pass
            click.echo(f"{device}  {a.clause}  ({a.scenario}): {a.verdict} now, {a.runs} run(s)")
            if fs:
                click.echo(f"    failing since {fs['started_at']} (run {fs['run_id']}, firmware {fs['firmware'] or '?'})")
            click.echo(f"    last pass: {lp['started_at']} (run {lp['run_id']}, firmware {lp['firmware'] or '?'}) {lp['bundle']}" if lp else "    last pass: never")
    if not answer:
        click.echo(f"rig: nothing recorded for device {_safe(device)}" + (f" and {_safe(clause or scenario)}" if clause or scenario else ""), err=True)
        sys.exit(1)


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--device", "devices", multiple=True, metavar="NAME", help="only this device of the bundle's run (repeatable)")
@click.option("--scenario", "scenarios", multiple=True, metavar="ID", help="only this scenario of the bundle's run (repeatable)")
@click.option("--pubkey", type=click.Path(dir_okay=False, exists=True), help="PEM public key of another bench whose bundles may be replayed here")
@_execution_options
def rerun(bundle: str, devices: tuple[str, ...], scenarios: tuple[str, ...], pubkey: str | None, out_dir: str | None, jobs: int, quiet: bool,
          as_json: bool, wait_lock: float) -> None:
    """Run a bundle's checks again: its config as run, its devices and scenarios, the same inputs
    (canary tokens, seeds). Only a bundle signed by this bench's key or by --pubkey is replayed.
    Writes a new bundle; exit codes as for run."""
    from rig.engine import RunPlan
    from rig.rerun import RerunError, load_rerun, narrow
    from rig.signing import load_public_pem

    try:
        pinned = load_public_pem(Path(pubkey).read_bytes()) if pubkey else None
    except (OSError, ValueError) as exc:
        click.echo(f"rig: --pubkey {pubkey}: {exc}", err=True)
        sys.exit(2)
    try:
        source = load_rerun(_bundle_path(bundle), pinned)
        devs, scns = narrow(source, list(devices), list(scenarios))
        plan = RunPlan.select(source.config, devs, scns, Path(out_dir) if out_dir else None, jobs, wait_lock)
    except (RerunError, ValueError) as exc:
        click.echo(f"rig: {_safe(exc)}", err=True)
        sys.exit(2)
    plan.inputs = {d: v for d, v in source.inputs.items() if d in devs}
    plan.rerun_of = source.run_id
    _execute_and_exit(plan, quiet, as_json)


@main.group()
def keys() -> None:
    """The bench key and the keys of other benches whose bundles this bench trusts."""


@keys.command("show")
def keys_show() -> None:
    """Print this bench's public key (PEM), to hand to a lab that verifies its bundles."""
    from rig.signing import BenchKey, public_pem

    key = BenchKey.load_or_create()
    click.echo(public_pem(key.public_key).decode().rstrip())
    click.echo(f"# {key.fingerprint}", err=True)


@keys.command("trust")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--name", required=True, help="what to call the bench it belongs to, e.g. lab-b-bench-3")
def keys_trust(file: str, name: str) -> None:
    """Trust another bench's public key (PEM): rig verify then accepts its bundles, exit 0. Exit 2 bad key."""
    from rig.signing import trust_key

    try:
        fp = trust_key(Path(file).read_bytes()[:65536], name)
    except (OSError, ValueError) as exc:
        click.echo(f"rig: {file}: {_safe(exc)}", err=True)
        sys.exit(2)
    click.echo(f"trusted {fp} as {name}")


@keys.command("list")
def keys_list() -> None:
    """This bench's key and every trusted key, by fingerprint."""
    from rig.signing import local_public_key, trusted_keys, fingerprint

    local = local_public_key()
    click.echo(f"{fingerprint(local) if local else '(no bench key yet)'}  this bench")
    for fp, path in trusted_keys().items():
        click.echo(f"{fp}  {path.stem}")


def _bundle_path(bundle: str) -> Path:
    """The bundle folder a user names, with the symlinks on the way resolved (an ``evidence/latest``
    link a lab keeps); a symlink *inside* the bundle is still refused by the verifier."""
    return Path(os.path.realpath(bundle))


@main.command()
@click.argument("bundle", type=click.Path())
@click.option("--pubkey", type=click.Path(dir_okay=False, exists=True), help="PEM public key the bundle must be signed by")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def verify(bundle: str, pubkey: str | None, as_json: bool) -> None:
    """Check a bundle byte for byte: 0 verified, 1 tampered, 2 not a bundle, 3 incomplete,
    4 intact but signed by a key that is neither this bench's, a trusted one, nor --pubkey."""
    from rig.signing import load_public_pem
    from rig.verify import verify_bundle

    pinned = None
    if pubkey:
        try:
            pinned = load_public_pem(Path(pubkey).read_bytes()[:65536])
        except (OSError, ValueError) as exc:
            click.echo(f"rig: --pubkey {pubkey}: {exc}", err=True)
            sys.exit(2)
    root = _bundle_path(bundle)
    rep = verify_bundle(root, pinned)
    if as_json:
        click.echo(json.dumps(rep.to_dict(), indent=2))
    else:
        click.echo(f"{_safe(bundle)}: {rep.status.upper()}" + (f" ({_safe(str(root))})" if str(root) != bundle.rstrip("/") else ""))
        if rep.key_fingerprint:
            trust = {"pinned": "the pinned key", "not-pinned": "NOT the pinned key", "this-bench": "this bench's key",
                     "trusted": "a key added with rig keys trust",
                     "unknown": "an unknown key: neither this bench's nor a trusted one; pin it with --pubkey or add it with rig keys trust"
                     }.get(rep.key_trust, rep.key_trust)
            click.echo(f"  signed by {rep.key_fingerprint} ({trust})")
        click.echo(f"  {rep.files_checked} files checked, {rep.journal_entries} journal entries")
        for p in rep.problems:
            click.echo(f"  problem: {_safe(p)}")
        for n in rep.notes:
            click.echo(f"  note: {_safe(n)}")
        for s in rep.scenarios_done:
            click.echo(f"  recorded: {_safe(s)}")
    sys.exit(rep.exit_code)


@main.group()
def config() -> None:
    """Check bench configs; print their JSON Schema."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate FILE (a bench or a lab config); print one line per problem (file:line:column:
    field: message), exit 2 if any."""
    from rig.config import read_config_text
    from rig.lab.config import is_lab_text

    try:
        text = read_config_text(Path(file))
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(f"rig: config error: {p}", err=True)
        sys.exit(2)
    if is_lab_text(text):
        lab = _load_lab_or_exit(file)
        hosts = ", ".join(f"{h} ({len(b.bench.devices)} device(s))" for h, b in lab.benches.items())
        click.echo(f"{file}: ok: lab {lab.lab.name}, {len(lab.benches)} host(s): {hosts}")
        return
    cfg = _load_or_exit(file)
    names = ", ".join(cfg.bench.devices)
    click.echo(f"{file}: ok: bench {cfg.bench.bench.name}, {len(cfg.bench.devices)} device(s): {names}")
    for line in unconfigured_hints(cfg.bench):
        click.echo(line)


def unconfigured_hints(bench) -> list[str]:  # noqa: ANN001 - a BenchConfig
    """One line per part a scenario that applies would record as not configured (the config
    gives the rig no means to carry it out), saying what to add: ``hint: DEVICE SCENARIO PART:
    not configured (MISSING): ADD``. The config is still valid: these parts are shown as not
    configured, never counted as observed."""
    from scenarios import REGISTRY

    out = []
    for name, dev in bench.devices.items():
        for sid, cls in REGISTRY.items():
            sc = cls()
            if sc.applies(dev) is None:
                out += [f"hint: {name} {sid} {u.part}: not configured ({u.missing}): {u.add}" for u in sc.unconfigured(dev)]
    return out


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of bench configs (for editors)."""
    click.echo(json.dumps(config_json_schema(), indent=2))


@main.group()
def lab() -> None:
    """The lab: bench hosts on Celery and Redis, one history, one evidence store."""


@lab.command("worker")
@click.option("-c", "--config", "lab_path", required=True, type=click.Path(dir_okay=False), help="lab config (YAML)")
@click.option("--bench", "bench_path", type=click.Path(dir_okay=False), help="the bench config this host owns (its host is found in the lab)")
@click.option("--host", help="or the host's name under lab.hosts")
@click.option("-j", "--jobs", type=int, default=4, show_default=True, help="devices of this host driven at once")
@click.option("--spool", type=click.Path(file_okay=False), help="local folder for bundles being written (default ~/.local/share/privrig/lab-spool)")
def lab_worker(lab_path: str, bench_path: str | None, host: str | None, jobs: int, spool: str | None) -> None:
    """Run a Celery worker for one bench host: it takes only that host's jobs."""
    from rig.lab import app as labapp

    lab_cfg = _load_lab_or_exit(lab_path)
    if (bench_path is None) == (host is None):
        click.echo("rig: lab worker: give --bench BENCH.yaml (or --host NAME)", err=True)
        sys.exit(2)
    if bench_path is not None:
        mine = [h for h, cfg in lab_cfg.benches.items() if Path(cfg.path).resolve() == Path(bench_path).resolve()]
        if not mine:
            click.echo(f"rig: lab worker: --bench {bench_path}: no host of {lab_path} owns that bench config", err=True)
            sys.exit(2)
        host = mine[0]
    assert host is not None
    if host not in lab_cfg.benches:
        click.echo(f"rig: lab worker: --host {host}: no such host in {lab_path} (hosts: {', '.join(lab_cfg.benches)})", err=True)
        sys.exit(2)
    if jobs < 1:
        click.echo(f"rig: lab worker: --jobs {jobs}: must be at least 1", err=True)
        sys.exit(2)
    spool_dir = Path(spool) if spool else Path(os.environ.get("PRIVRIG_HOME", Path.home() / ".local/share/privrig")) / "lab-spool" / host
    spool_dir.mkdir(parents=True, exist_ok=True)
    try:
        app = labapp.make_app(lab_cfg)
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(f"rig: config error: {p}", err=True)
        sys.exit(2)
    from rig.lab.store import EvidenceStore

    try:
        swept = EvidenceStore(lab_cfg.lab.evidence_store).sweep()
    except OSError as exc:
        click.echo(f"rig: lab worker: evidence store {lab_cfg.lab.evidence_store}: {exc.strerror or exc}", err=True)
        sys.exit(3)
    if swept:
        click.echo(f"rig: lab worker: removed {len(swept)} copy leftover(s) older than a day from {lab_cfg.lab.evidence_store}/.incoming", err=True)
    labapp.CONTEXT = labapp.WorkerContext(lab_cfg, host, spool_dir)
    click.echo(f"rig: lab worker for host {host}: queue {labapp.queue_of(host)}, {jobs} device(s) at once, spool {spool_dir}", err=True)
    app.worker_main(["worker", "-Q", labapp.queue_of(host), "-c", str(jobs), "-n", f"{host}.{os.getpid()}@%h", "-l", "WARNING", "--without-gossip",
                     "--without-mingle", "-P", "prefork"])


@lab.command("submit")
@click.option("-c", "--config", "lab_path", required=True, type=click.Path(dir_okay=False), help="lab config (YAML)")
@click.option("--device", "devices", multiple=True, help="a device of any host (repeatable)")
@click.option("--scenario", "scenarios", multiple=True, help="scenario id (repeatable; default all)")
@click.option("--all", "all_devices", is_flag=True, help="every device of every host")
@click.option("--wait", "wait", type=float, default=None, is_flag=False, flag_value=86400.0, metavar="[SECONDS]",
              help="show progress and wait for the jobs (at most SECONDS); exit as rig run would")
@click.option("--junit", type=click.Path(dir_okay=False), help="with --wait: write one JUnit file for the whole submission")
@click.option("-q", "--quiet", is_flag=True, help="with --wait: only warnings and the result lines")
def lab_submit(lab_path: str, devices: tuple[str, ...], scenarios: tuple[str, ...], all_devices: bool, wait: float | None, junit: str | None,
               quiet: bool) -> None:
    """Send one job per device to its host's queue and print the job ids."""
    from rig.lab import submit as labsubmit

    lab_cfg = _load_lab_or_exit(lab_path)
    sys.exit(labsubmit.submit(lab_cfg, list(devices), list(scenarios), all_devices, wait, Path(junit) if junit else None, quiet))


@lab.command("status")
@click.option("-c", "--config", "lab_path", required=True, type=click.Path(dir_okay=False), help="lab config (YAML)")
@click.option("--json", "as_json", is_flag=True, help="the status as JSON")
def lab_status(lab_path: str, as_json: bool) -> None:
    """Workers that are up, queued and running jobs per host, the last verdicts per device."""
    from rig.lab import submit as labsubmit

    lab_cfg = _load_lab_or_exit(lab_path)
    sys.exit(labsubmit.status(lab_cfg, as_json))


@main.command("devices")
@click.option("--usb-bus", default="libusb", show_default=True, help="libusb, or sim:DIR for the simulated bench")
def list_devices(usb_bus: str) -> None:
    """List the serial ports and USB devices attached to this bench host."""
    from serial.tools import list_ports

    from drivers.errors import DeviceError
    from drivers.usb import classify, enumerate_bus

    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    click.echo(f"serial ports ({len(ports)}):")
    for p in ports:
        click.echo(f"  {p.device:20} {_safe(p.description)}" + (f"  [{p.vid:04x}:{p.pid:04x} {_safe(p.serial_number or '')}]" if p.vid is not None else ""))
    try:
        devs = enumerate_bus(usb_bus)
    except DeviceError as exc:
        click.echo(f"usb: {exc.reason}", err=True)
        sys.exit(1)
    click.echo(f"usb devices on {usb_bus} ({len(devs)}):")
    for d in devs:
        click.echo(f"  {d.vidpid} bus {d.bus} addr {d.address}  {_safe(d.manufacturer or '')} {_safe(d.product_name or '')}  serial {_safe(d.serial or '-')}")
        for i in d.interfaces:
            kind = classify(i.cls, i.sub, i.proto)
            click.echo(f"      if {i.number} alt {i.alt} class {i.triple()} {_safe(i.name or '')}" + (f"  <- {kind[0]}" if kind else ""))


@main.command("scenarios")
def list_scenarios() -> None:
    """List the scenario ids this rig implements and the clauses they check."""
    from scenarios import PLANNED, REGISTRY

    for sid, cls in REGISTRY.items():
        click.echo(f"{sid:20} {'; '.join(cls.clauses)}  {cls.title}")
    for sid in PLANNED:
        click.echo(f"{sid:20} (planned)")


@main.group()
def sim() -> None:
    """The simulated bench (root): network namespaces with real daemons."""


def _sim_bench(config_path: str):  # type: ignore[no-untyped-def]
    from rig.sim.bench import SimBench
    from rig.sim.net import SimError

    cfg = _load_or_exit(config_path)
    try:
        return SimBench(cfg)
    except SimError as exc:
        click.echo(f"rig: {exc}", err=True)
        sys.exit(2)


@sim.command("up")
@click.option("-c", "--config", "config_path", default=DEFAULT_SIM_CONFIG, show_default=True, type=click.Path(dir_okay=False))
def sim_up(config_path: str) -> None:
    """Build the simulated bench described by the config's simulator section."""
    from rig.sim.net import SimError

    bench = _sim_bench(config_path)
    try:
        state = bench.up(log=lambda m: click.echo(m, err=True))
    except SimError as exc:
        click.echo(f"rig: sim up: {exc}", err=True)
        sys.exit(1)
    for name, d in state["devices"].items():
        click.echo(f"{name}: {d['profile']} at {d['address']}, console {d['console']}")


@sim.command("down")
@click.option("-c", "--config", "config_path", default=DEFAULT_SIM_CONFIG, show_default=True, type=click.Path(dir_okay=False))
def sim_down(config_path: str) -> None:
    """Remove every namespace, link, mount, process and file the bench made."""
    from rig.sim.net import SimError

    bench = _sim_bench(config_path)
    try:
        removed = bench.down(log=lambda m: click.echo(m, err=True))
    except SimError as exc:
        click.echo(f"rig: sim down: {exc}", err=True)
        sys.exit(1)
    click.echo("sim: down" + ("" if removed else " (nothing was up)"))


@sim.command("status")
@click.option("-c", "--config", "config_path", default=DEFAULT_SIM_CONFIG, show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def sim_status(config_path: str, as_json: bool) -> None:
    """Show which simulated devices are up and which of their daemons run."""
    st = _sim_bench(config_path).status()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"bench {'up' if st['up'] else 'down'} ({st['state_dir']}, bridge {st['bridge']})")
    for name, d in st["devices"].items():
        procs = " ".join(f"{k}:{'up' if v else 'DOWN'}" for k, v in d["processes"].items()) or "-"
        click.echo(f"  {name:16} {d['profile']:10} netns:{'yes' if d['netns'] else 'no'} {d['address'] or '-'} console:{d['console'] or '-'} {procs}")


if __name__ == "__main__":
    main()
