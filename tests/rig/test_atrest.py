"""Judging data at rest, measured on labelled sets built from real encoders and real config syntaxes."""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from rig import atrest
from rig.sim import media
from tests.conftest import need_tools


def _encoded(ext: str, img: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def _ffmpeg(tmp: Path, args: list[str], out: str) -> bytes:
    need_tools("ffmpeg")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1", *args, str(tmp / out)],
                   check=True, timeout=120, capture_output=True)
    return (tmp / out).read_bytes()


@pytest.fixture(scope="module")
def labelled_media(tmp_path_factory: pytest.TempPathFactory, media_cache: Path) -> list[tuple[str, bytes]]:
    """Real images and recordings: (expected format, first bytes)."""
    tmp = tmp_path_factory.mktemp("media")
    scene = media.scene()
    out = [("JPEG", _encoded(".jpg", scene, cv2.IMWRITE_JPEG_QUALITY, q)) for q in (30, 60, 90, 100)]
    out += [("JPEG", _encoded(".jpg", cv2.resize(scene, (w, h)))) for w, h in ((64, 48), (1920, 1080))]
    out += [("PNG", _encoded(".png", scene)), ("PNG", _encoded(".png", cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)))]
    out += [("BMP", _encoded(".bmp", scene)), ("WebP", _encoded(".webp", scene))]
    out.append(("H.264", media.h264_clip(media_cache, seconds=1)))
    out.append(("H.264", _ffmpeg(tmp, ["-c:v", "libx264", "-bsf:v", "h264_mp4toannexb", "-f", "h264"], "b.h264")))
    out.append(("H.265", _ffmpeg(tmp, ["-c:v", "libx265", "-f", "hevc"], "c.hevc")))
    out.append(("MP4/isom", _ffmpeg(tmp, ["-c:v", "libx264"], "d.mp4")))
    out.append(("AVI", _ffmpeg(tmp, ["-c:v", "mjpeg"], "e.avi")))
    out.append(("Matroska/WebM", _ffmpeg(tmp, ["-c:v", "libx264"], "f.mkv")))
    return out


def test_every_real_image_and_recording_is_recognised(labelled_media) -> None:
    for kind, data in labelled_media:
        assert atrest.media_kind(data[:16]) == kind, (kind, data[:16].hex())


def test_random_and_everyday_files_are_not_media() -> None:
    """False positives: 200,000 random heads (ciphertext) and files a device keeps."""
    rng = np.random.default_rng(11)
    heads = rng.integers(0, 256, size=(200_000, 16), dtype=np.uint8)
    wrong = [h.tobytes().hex() for h in heads if atrest.media_kind(h.tobytes())]
    assert wrong == []  # 0 of 200,000
    everyday = [open("/bin/sh", "rb").read(16), zlib.compress(b"log line\n" * 100)[:16], b"SQLite format 3\0", b"#!/bin/sh\necho hi\n"[:16],
                b"SIMENC01" + os.urandom(8), b'{"user": "u1", "x', b"\x1f\x8b\x08\x00" + os.urandom(12), b"PK\x03\x04" + os.urandom(12)]
    assert [h for h in everyday if atrest.media_kind(h)] == []


SECRETS = [  # (line, key) stored in the clear
    (b"password=hunter2", "password"), (b'admin_password = "Sup3r Secret"', "admin_password"), (b"  passwd: s3cr3t", "passwd"),
    (b'"api_key": "AKIA4EXAMPLE7Q",', "api_key"), (b"cloud_token: c2VjcmV0LXRva2Vu", "cloud_token"), (b"export DB_PASSWORD='p@ss w0rd'", "DB_PASSWORD"),
    (b'    psk="MyHomeNetwork2024"', "psk"), (b"mqtt.password=iot-123", "mqtt.password"), (b"rtsp_pwd=12345", "rtsp_pwd"),
    (b"secret: 'k8s-secret-value'", "secret"), (b"AccessKey=AKIDz8krbsJ5yKBZQpn74WFkmLPx3", "AccessKey"), (b"wifi_passphrase = correct horse battery", "wifi_passphrase"),
    (b'{"token":"eyJhbGciOiJIUzI1NiJ9.e30.abc"}', "token"), (b"PRIVATE_KEY=abcdef0123456789", "PRIVATE_KEY"), (b"ftp_pass=anonymous1", "ftp_pass"),
    (b"default_password: admin", "default_password"), (b"root_pwd=root", "root_pwd"), (b"password = changeme  # set on first boot", "password"),
    (b"auth_token=0f3c9a7e", "auth_token"), (b"client_secret: 9b2c-77aa", "client_secret"),
]
NOT_SECRETS = [
    b"passwd: files", b"shadow: files", b"password=${DB_PASSWORD}", b"password: {{ vault_password }}", b"password_file=/data/secrets.enc",
    b"api_key=<your key here>", b"root_password=$6$rounds=5000$abc$def", b"userPassword: {SSHA}x8d7a6s5d4f3g2h1", b"password=",
    b"token: ********", b"# password=hunter2", b"; secret = x", b"// token: abc", b"PasswordAuthentication no", b"PermitEmptyPasswords no",
    b"token_ttl=3600", b"password_min_length=8", b"require_password: true", b"secret: ENC(AbCdEf==)", b"password: !vault |",
    b"pwd_policy = strong", b"password: null", b"access_token_url=https://auth.example/token", b'"password": {', b"secret=/etc/app/secret.key",
]


def test_secret_lines_labelled_set() -> None:
    missed = [line for line, key in SECRETS if (hit := atrest.judge_secret_line(line)) is None or hit.key != key]
    false = [line for line in NOT_SECRETS if atrest.judge_secret_line(line) is not None]
    assert missed == [] and false == []  # 0 of 20 missed, 0 of 25 falsely flagged (docs)
    hit = atrest.judge_secret_line(b"password=hunter2")
    assert hit is not None and "hunter2" not in hit.masked and hit.masked == "h…2 [7 characters]"


def test_device_grep_preselects_every_secret_line(tmp_path: Path) -> None:
    """The ERE the device's grep runs must select every labelled secret (busybox grep -iE)."""
    need_tools("busybox")
    f = tmp_path / "c.conf"
    f.write_bytes(b"\n".join(line for line, _ in SECRETS) + b"\n")
    out = subprocess.run(["busybox", "grep", "-icE", "-e", atrest.SECRET_GREP, str(f)], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(SECRETS)


def test_private_keys_are_judged_by_loading_them() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    k = ec.generate_private_key(ec.SECP256R1())
    clear = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    locked = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    e = ed25519.Ed25519PrivateKey.generate()
    ossh = e.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    ossh_locked = e.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.BestAvailableEncryption(b"pw"))
    assert [atrest.private_key_state(d) for d in (clear, locked, ossh, ossh_locked, b"-----BEGIN PRIVATE KEY-----\ngarbage\n")] == \
        ["unencrypted", "encrypted", "unencrypted", "encrypted", "unparsed"]
    assert atrest.judge_secret_line(clear.splitlines()[0]).kind == "private-key"  # type: ignore[union-attr]
    assert atrest.judge_secret_line(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") is None


@pytest.mark.parametrize("scheme,weakness", [("-1", "md5-crypt"), ("-5", None), ("-6", None), ("-apr1", "unknown-scheme")])
def test_password_fields_from_real_crypt(scheme: str, weakness: str | None) -> None:
    field = subprocess.run(["openssl", "passwd", scheme, "-stdin"], input="admin", capture_output=True, text=True, check=True).stdout.strip()
    assert atrest.judge_password_field(field) == weakness


@pytest.mark.parametrize("field,weakness", [("", "empty"), ("x", None), ("*", None), ("!", None), ("!$1$abc$def", None), ("ab01FAX.bQRSU", "des-crypt"),
                                            ("admin", "not-a-hash"), ("$y$j9T$abc$def", None), ("$2b$12$abcdefghijklmnopqrstuu", None)])
def test_password_field_forms(field: str, weakness: str | None) -> None:
    assert atrest.judge_password_field(field) == weakness


def test_declared_encryption_labelled_set() -> None:
    """AES-GCM stores are random; XOR with keys of 1-32 bytes, base64 and plain JSON are not."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    rng = np.random.default_rng(3)
    plain = b'{"wifi": {"ssid": "lab", "psk": "lab-wifi-passphrase"}, "users": [' + b'{"name": "u1", "face": "0.12,0.55,0.31"},' * 600 + b"]}"
    ok = [b"MAGIC001" + os.urandom(12) + AESGCM(AESGCM.generate_key(bit_length=128)).encrypt(os.urandom(12), plain, None) for _ in range(20)]
    bad = [bytes(b ^ key[i % len(key)] for i, b in enumerate(plain)) for key in (rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (1, 2, 4, 8, 16, 32))]
    import base64

    bad += [base64.b64encode(plain), plain]
    assert [atrest.looks_encrypted(d)[0] for d in ok] == [True] * len(ok)
    assert [atrest.looks_encrypted(d)[0] for d in bad] == [False] * len(bad)
    assert atrest.looks_encrypted(os.urandom(1000))[0] is None  # too few bytes to tell


def test_model_formats() -> None:
    from rig.sim.storage import _onnx_like, _weights

    assert atrest.model_format(_onnx_like(_weights(64, 1))[:16]) == "ONNX"
    assert atrest.model_format(b"\x1c\x00\x00\x00TFL3\x00\x00\x00\x00\x00\x00\x00\x00") == "TensorFlow Lite"
    assert atrest.model_format(b"PK\x03\x04" + b"\0" * 12) is not None and atrest.model_format(b"GGUF" + b"\0" * 12) == "GGUF"
    rng = np.random.default_rng(5)
    assert sum(atrest.model_format(rng.integers(0, 256, 16, dtype=np.uint8).tobytes()) is not None for _ in range(20_000)) <= 2
    assert atrest.looks_encrypted(_onnx_like(_weights(16384, 2)))[0] is False  # float weights are not random bytes
