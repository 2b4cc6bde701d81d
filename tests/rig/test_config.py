"""Config: typed models, errors that name file, line and field; exit 2 and nothing runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from rig.config import ConfigError, PortSpec, config_json_schema, load_config, parse_config
from tests.conftest import SIM_CONFIG, rig

GOOD = textwrap.dedent(
    """\
    version: 1
    bench:
      name: lab-a
    devices:
      cam-01:
        privacy_level: 2
        network:
          address: 198.18.1.20
          open_ports: [22, 443/tcp, 161/udp]
        ssh:
          host: 198.18.1.20
          port: 22
          user: admin
          password_env: CAM01_PASSWORD
          host_key: "SHA256:qQ5VgO/UqowauRmrn1V1X/Qx9gejyK6fLAoyqZHTsHM"
        serial:
          port: /dev/ttyUSB0
          baud: 115200
        camera:
          streams:
            - {name: main, url: "https://198.18.1.20/stream.mjpg"}
        actions:
          shutter-close: {via: ssh, command: "shutter close"}
          user-create: {via: serial, command: "adduser -D u{token}"}
          x-relay-on: {via: host, argv: [relay, "on", "1"]}
    """
)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bench.yaml"
    p.write_text(text)
    return p


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, text))
    return [str(p) for p in ei.value.problems]


def test_good_config_is_typed(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    dev = cfg.device("cam-01")
    assert dev.privacy_level == 2
    assert [str(p) for p in dev.network.open_ports] == ["22/tcp", "443/tcp", "161/udp"]
    assert dev.ssh.password_env == "CAM01_PASSWORD"
    assert dev.actions["user-create"].render(token="abc") == "adduser -D uabc"
    assert dev.actions["x-relay-on"].render() == ["relay", "on", "1"]
    assert len(cfg.sha256) == 64


def test_shipped_sim_bench_config_is_valid() -> None:
    cfg = load_config(SIM_CONFIG)
    assert set(cfg.bench.devices) == {"cam-compliant", "cam-violating", "cam-debug", "cam-boot", "cam-secure", "cam-leaky", "cam-mute", "cam-retail", "cam-retail-secure",
                                        "cam-absent"}
    assert "cam-absent" not in cfg.bench.simulator.devices  # type: ignore[union-attr]  # configured, never built: the device that is not there
    assert cfg.bench.devices["cam-secure"].network.tls.mutual_auth == [8443]
    assert cfg.bench.simulator is not None
    assert str(cfg.bench.simulator.subnet) == "198.18.0.0/24"


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    text = GOOD.replace("port: 22\n", "port: 70000\n")
    [msg] = problems_of(tmp_path, text)
    line = text.splitlines().index("      port: 70000") + 1
    assert msg.startswith(f"{tmp_path / 'bench.yaml'}:{line}:")
    assert "devices.cam-01.ssh.port" in msg
    assert "65535" in msg


def test_unknown_field_is_named(tmp_path: Path) -> None:
    [msg] = problems_of(tmp_path, GOOD.replace("baud: 115200", "buad: 115200"))
    assert "devices.cam-01.serial.buad" in msg and "unknown field" in msg


def test_unpinned_host_key_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace('      host_key: "SHA256:qQ5VgO/UqowauRmrn1V1X/Qx9gejyK6fLAoyqZHTsHM"\n', "")
    [msg] = problems_of(tmp_path, text)
    assert "devices.cam-01.ssh" in msg and "pin" in msg


def test_unknown_placeholder_and_action(tmp_path: Path) -> None:
    msgs = problems_of(tmp_path, GOOD.replace("u{token}", "u{tokn}").replace("shutter-close:", "shuter-close:"))
    text = "\n".join(msgs)
    assert "{tokn}" in text
    assert "unknown action 'shuter-close'" in text


def test_action_needs_its_transport(tmp_path: Path) -> None:
    text = GOOD.replace("    serial:\n      port: /dev/ttyUSB0\n      baud: 115200\n", "")
    assert "serial:" not in text.split("actions:")[0]
    [msg] = problems_of(tmp_path, text)
    assert "devices.cam-01.actions.user-create.via" in msg and "no serial transport" in msg


def test_duplicate_key_and_bad_yaml(tmp_path: Path) -> None:
    [dup] = problems_of(tmp_path, GOOD.replace("    privacy_level: 2\n", "    privacy_level: 2\n    privacy_level: 3\n"))
    assert "devices.cam-01.privacy_level" in dup and "twice" in dup
    [bad] = problems_of(tmp_path, "bench: [unclosed\n")
    assert ":2:" in bad or ":1:" in bad
    assert "not valid YAML" in bad


@pytest.mark.parametrize("subnet", ["172.31.200.0/24", "198.17.255.0/24", "198.20.0.0/24"])
def test_simulator_subnet_must_be_benchmark_range(tmp_path: Path, subnet: str) -> None:
    text = GOOD + f"simulator:\n  subnet: {subnet}\n  devices:\n    cam-01: {{profile: compliant}}\n"
    msgs = problems_of(tmp_path, text)
    assert any("simulator.subnet" in m and "198.18.0.0/15" in m for m in msgs)


def test_simulated_device_address_must_be_in_subnet(tmp_path: Path) -> None:
    text = GOOD + "simulator:\n  subnet: 198.18.0.0/24\n  devices:\n    cam-01: {profile: compliant}\n"
    [msg] = problems_of(tmp_path, text)
    assert "devices.cam-01.network.address" in msg and "198.18.1.20" in msg


def test_yaml_boolean_trap_is_explained(tmp_path: Path) -> None:
    [msg] = problems_of(tmp_path, GOOD.replace('[relay, "on", "1"]', "[relay, on, \"1\"]"))
    assert "actions.x-relay-on.argv[1]" in msg and "quote the value" in msg


def test_port_spec_forms() -> None:
    assert str(PortSpec.model_validate("161/udp")) == "161/udp"
    assert str(PortSpec.model_validate(8080)) == "8080/tcp"
    with pytest.raises(ValueError):
        PortSpec.model_validate("telnet")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(ei.value) and "cannot read" in str(ei.value)


def test_relative_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    text = GOOD.replace("password_env: CAM01_PASSWORD", "key_file: keys/id_ed25519")
    cfg = parse_config(text, tmp_path / "sub" / "bench.yaml")
    assert cfg.device("cam-01").ssh.key_file == (tmp_path / "sub" / "keys" / "id_ed25519").resolve()


def test_cli_check_exit_2_and_run_does_nothing(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("privacy_level: 2", "privacy_level: 5"))
    res = rig("config", "check", str(bad))
    assert res.returncode == 2
    [line] = res.stderr.strip().splitlines()
    assert "bench.yaml:6:" in line and "devices.cam-01.privacy_level" in line
    out = tmp_path / "evidence"
    res = rig("run", "-c", str(bad), "--out", str(out))
    assert res.returncode == 2
    assert not out.exists(), "nothing may run (no bundle) on an invalid config"


def test_cli_unknown_device_or_scenario_is_usage_error(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD)
    res = rig("run", "-c", str(good), "--device", "cam-99", "--out", str(tmp_path / "e"))
    assert res.returncode == 2 and "cam-99" in res.stderr
    res = rig("run", "-c", str(good), "--scenario", "no-such", "--out", str(tmp_path / "e"))
    assert res.returncode == 2 and "no-such" in res.stderr
    assert not (tmp_path / "e").exists()


def test_schema_command_validates_shipped_config() -> None:
    res = rig("config", "schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert schema == json.loads(json.dumps(config_json_schema()))
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(SIM_CONFIG.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"bench": {"name": "x"}, "devices": {"d": {"privacy_level": 9}}})


@pytest.mark.parametrize("url,ok", [("device:///dev/video0", True), ("rtsp://198.18.1.9:554/cam", True), ("http://198.18.1.9/o.mjpg", True),
                                    ("ftp://198.18.1.9/o", False), ("device://video0", False), ("/dev/video0", False)])
def test_observation_camera_sources(tmp_path: Path, url: str, ok: bool) -> None:
    main = '        - {name: main, url: "https://198.18.1.20/stream.mjpg"}'
    assert main in GOOD
    text = GOOD.replace(main, f'{main}\n      observation: {{url: "{url}", lens: [0, 0, 10, 10]}}')
    if ok:
        assert load_config(write(tmp_path, text)).bench.devices["cam-01"].camera.observation.url == url
    else:
        [problem] = problems_of(tmp_path, text)
        assert "camera.observation.url" in problem and "device:///dev/videoN" in problem


CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "config"
HOSTILE = sorted(p.name for p in CORPUS.glob("*.yaml") if p.name != "good.yaml")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_configs_are_one_line_per_problem_and_exit_2(name: str, tmp_path: Path) -> None:
    """The smallest inputs that once crashed, hung or forged output (issue 16's fuzzing): each is
    a ConfigError naming the file, one escaped line per problem, exit 2 from check and from run."""
    path = CORPUS / name
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    for problem in ei.value.problems:
        line = str(problem)
        assert line.startswith(str(path)) and "\n" not in line and "\x1b" not in line
    res = rig("config", "check", str(path), timeout=30)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert all(line.startswith("rig: config error: ") for line in res.stderr.strip().splitlines())
    assert "config ok" not in res.stdout + res.stderr.replace("\\n", "")
    run = rig("run", "-c", str(path), "--out", str(tmp_path / "ev"), timeout=30)
    assert run.returncode == 2 and not (tmp_path / "ev").exists()


def test_special_files_are_refused_before_reading(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "bench.fifo"
    os.mkfifo(fifo)
    for p in (fifo, Path("/dev/zero"), tmp_path):
        [problem] = problems_of_path(p)
        assert "not a regular file" in problem
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    [problem] = problems_of_path(big)
    assert "larger than 1 MiB" in problem


def problems_of_path(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    return [str(p) for p in ei.value.problems]


def test_a_date_like_firmware_stays_a_string(tmp_path: Path) -> None:
    text = GOOD.replace("    privacy_level: 2\n", "    identity: {firmware: 2020-02-30, serial: 2026-11-30}\n    privacy_level: 2\n", 1)
    cfg = load_config(write(tmp_path, text))
    assert cfg.device("cam-01").identity.firmware == "2020-02-30" and cfg.device("cam-01").identity.serial == "2026-11-30"


def test_shared_aliases_within_bounds_still_load(tmp_path: Path) -> None:
    text = GOOD.replace("    serial:\n      port: /dev/ttyUSB0\n      baud: 115200\n",
                        "    serial: &console\n      port: /dev/ttyUSB0\n      baud: 115200\n")
    text += "  cam-02:\n    privacy_level: 2\n    serial: *console\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.device("cam-02").serial.port == "/dev/ttyUSB0"  # type: ignore[union-attr]


MAIN = '        - {name: main, url: "https://198.18.1.20/stream.mjpg"}'


@pytest.mark.parametrize("url", ["https://admin:12345@198.18.1.20/stream.mjpg", "rtsp://admin@198.18.1.20/main", "rtsp://a:b%40c@198.18.1.20:554/x"])
def test_a_url_with_userinfo_is_refused_with_the_way_out(tmp_path: Path, url: str) -> None:
    [problem] = problems_of(tmp_path, GOOD.replace(MAIN, f'        - {{name: main, url: "{url}"}}'))
    assert "camera.streams[0].url" in problem and "auth: {user" in problem and "12345" not in problem
    assert problem.startswith(f"{tmp_path / 'bench.yaml'}:")


def test_stream_auth_reads_its_password_from_env_or_file_and_says_which_is_missing(tmp_path: Path, monkeypatch) -> None:
    from rig.config import SecretMissing

    text = GOOD.replace(MAIN, MAIN[:-1] + ", auth: {user: viewer, password_env: CAM01_VIEWER_PW}}")
    auth = load_config(write(tmp_path, text)).bench.devices["cam-01"].camera.streams[0].auth
    monkeypatch.delenv("CAM01_VIEWER_PW", raising=False)
    with pytest.raises(SecretMissing, match=r"^devices.cam-01.camera.streams\[0\].auth.password_env: environment variable CAM01_VIEWER_PW is not set$"):
        auth.credentials("devices.cam-01.camera.streams[0].auth")
    monkeypatch.setenv("CAM01_VIEWER_PW", "s3cret")
    assert auth.credentials("x").password == "s3cret" and "s3cret" not in repr(auth.credentials("x"))
    (tmp_path / "viewer.pw").write_text("fr0m-file\nsecond line ignored\n")
    text = GOOD.replace(MAIN, MAIN[:-1] + ", auth: {user: viewer, password_file: viewer.pw}}")
    auth = load_config(write(tmp_path, text)).bench.devices["cam-01"].camera.streams[0].auth
    assert auth.password_file == tmp_path / "viewer.pw" and auth.credentials("x").password == "fr0m-file"
    (tmp_path / "viewer.pw").unlink()
    with pytest.raises(SecretMissing, match="viewer.pw: No such file"):
        auth.credentials("devices.cam-01.camera.streams[0].auth")
    [problem] = problems_of(tmp_path, GOOD.replace(MAIN, MAIN[:-1] + ", auth: {user: viewer, password_env: A, password_file: b}}"))
    assert "exactly one of password_env" in problem


def test_a_credentials_file_is_checked_line_by_line(tmp_path: Path) -> None:
    assert "  cam-01:\n    privacy_level: 2\n" in GOOD
    text = GOOD.replace("  cam-01:\n    privacy_level: 2\n", "  cam-01:\n    privacy_level: 2\n    credentials: vendor.txt\n")
    (tmp_path / "vendor.txt").write_text("# SimCam manual\nadmin:4321\nroot:\n")
    cfg = load_config(write(tmp_path, text))
    from rig.credentials import entries, load_file

    assert [(e.user, e.label) for e in load_file(cfg.bench.devices["cam-01"].credentials)] == [("admin", "vendor.txt #1"), ("root", "vendor.txt #2")]
    got = entries("http", [tmp_path / "vendor.txt"])
    assert got[0].label == "vendor.txt #1" and got[2].source == "built-in http" and len({(e.user, e.password) for e in got}) == len(got)
    (tmp_path / "vendor.txt").write_text("admin:4321\nno separator here\n")
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith(f"{tmp_path / 'vendor.txt'}:2: devices.cam-01.credentials: expected user:password") and "4321" not in problem
    (tmp_path / "vendor.txt").unlink()
    [problem] = problems_of(tmp_path, text)
    assert "vendor.txt" in problem and "cannot read credentials file" in problem


@pytest.mark.parametrize("actions,power,message", [
    ('      power-off: {via: host, argv: [relay, "1", "off"]}\n', "", "power-off and power-on come together"),
    ('      power-off: {via: ssh, command: poweroff}\n      power-on: {via: host, argv: [relay, "1", "on"]}\n', "",
     "power-off switches the supply: via host"),
    ('      power-cycle: {via: ssh, command: reboot}\n', "    power: {wait_for: console}\n", None),
    ('      power-cycle: {via: ssh, command: reboot}\n', "    power: {wait_for: dhcp}\n", "power.wait_for"),
])
def test_power_actions_and_settings(tmp_path: Path, actions: str, power: str, message: str | None) -> None:
    anchor = "    actions:\n"
    assert anchor in GOOD
    text = GOOD.replace(anchor, power + anchor + actions)
    if message is None:
        dev = load_config(write(tmp_path, text)).bench.devices["cam-01"]
        assert dev.power.wait_for == "console" and dev.power.timeout_s == 120 and "power-cycle" in dev.actions
        return
    problems = problems_of(tmp_path, text)
    assert any(message in p for p in problems), problems


BOARD = textwrap.dedent(
    """\
    version: 1
    bench: {name: boards}
    devices:
      board-01:
        privacy_level: 2
        serial: {port: /dev/ttyUSB0, baud: 115200}
    """)


@pytest.mark.parametrize("wait_for", ["ssh", "network"])
def test_a_console_only_board_cannot_wait_for_what_it_does_not_have(tmp_path: Path, wait_for: str) -> None:
    """A board with a UART and a relay, no network and no SSH: waiting for its SSH (or network)
    after a power cycle once read ssh.host of a device that has none."""
    relay = "    actions:\n      power-off: {via: host, argv: [relay, '1', 'off']}\n      power-on: {via: host, argv: [relay, '1', 'on']}\n"
    problems = problems_of(tmp_path, BOARD + f"    power: {{wait_for: {wait_for}}}\n" + relay)
    assert any("devices.board-01.power.wait_for" in p and wait_for in p for p in problems), problems
    dev = load_config(write(tmp_path, BOARD + "    power: {wait_for: console}\n" + relay)).bench.devices["board-01"]
    assert dev.power.wait_for == "console"


def test_config_check_names_the_parts_the_config_gives_no_means_for(tmp_path: Path) -> None:
    res = rig("config", "check", str(write(tmp_path, BOARD)))
    assert res.returncode == 0, res.stderr
    hints = [line for line in res.stdout.splitlines() if line.startswith("hint: ")]
    assert "hint: board-01 debug-ports bootloader: not configured (no power action): add power-off and power-on" in "\n".join(hints)
    assert any(h.startswith("hint: board-01 debug-ports tcp: not configured (no network section)") for h in hints)
    assert not any(" console:" in h for h in hints)  # the console it has is checked


def test_model_integrity_sections_are_checked_with_file_and_line(tmp_path: Path) -> None:
    """model-deploy without model.genuine, model.infer without url or an infer action, an infer url
    that is no http(s) address or carries a password, and a serial model-deploy: one line each."""
    acts = "      x-relay-on: {via: host, argv: [relay, \"on\", \"1\"]}\n"
    text = GOOD.replace(acts, acts + "      model-deploy: {via: serial, command: \"aictl install {model}\"}\n").replace(
        "    actions:\n", "    model:\n      infer: {answer: {label: result.label}}\n    actions:\n")
    msgs = "\n".join(problems_of(tmp_path, text))
    assert "bench.yaml:" in msgs
    assert "devices.cam-01.actions.model-deploy.via" in msgs and "serial console cannot carry a model" in msgs
    assert "model-deploy needs model.genuine" in msgs
    assert "devices.cam-01.model.infer" in msgs and "needs an infer action" in msgs
    for url, why in (("ftp://198.18.1.20/infer", "must be an http:// or https:// address"), ("http://admin:pw@198.18.1.20/infer", "user:password@")):
        bad = GOOD.replace("    actions:\n", f"    model:\n      infer: {{url: '{url}'}}\n    actions:\n")
        [msg] = problems_of(tmp_path, bad)
        assert "devices.cam-01.model.infer.url" in msg and why in msg and ":" in msg.split("devices")[0]
        assert "pw@" not in msg  # the password never in the error line
