"""What a simulated device keeps on its storage, and the app that uninstall-wipe drives.

``populate(root, kind)`` writes the firmware's own data into a device's busybox root
filesystem and installs ``/usr/bin/simapp``, a busybox ``sh`` script standing in for the
vendor's companion app, driven by the device actions over SSH:

``simapp install | user-create TOKEN | data-create TOKEN | user-delete TOKEN | uninstall | model-load PATH | infer IMAGE |
model-deploy MODEL [SIGNATURE]`` (the last two through the device's model service, rig.sim.inference)

The app keeps its files under ``/data/apps/simapp``, its log in ``/var/log/simapp.log``
and its recordings on external storage (``/mnt/sdcard/DCIM/simapp``). How well it wipes
follows ``/etc/simapp/mode`` in the device's root (written here, and by tests to inject a
fault at run time):

* ``clean``: user-delete and uninstall remove everything the app and the user stored;
* ``residue``: the user's folder goes, but the thumbnail cache and the log lines stay;
* ``external``: everything internal goes, the recordings on the SD card stay.

Firmware data, per kind:

* ``clean`` (cam-compliant): an encrypted settings store and model (random bytes behind a
  clear 16-byte header), a digest the app checks before loading the model, configuration
  that references secrets instead of holding them, a password-protected private key, and
  SHA-512-crypt hashes;
* ``leaky`` (cam-violating): snapshots as JPEG and PNG and a raw H.264 recording,
  plaintext passwords and a cloud token in the configuration, an unencrypted private key,
  MD5-crypt, DES-crypt and empty password hashes, a settings file declared encrypted that
  is XOR-scrambled, a real ONNX classifier in the clear (rig.modelfile.reference_model) that
  the app loads unchecked, and a second one the vendor never declared at /opt/simcam/res/res_0042.bin.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

MODES = ("clean", "residue", "external")

SIMAPP = r"""#!/bin/sh
# simapp: the simulated vendor app (rig/sim/storage.py). Modes: /etc/simapp/mode
mode=$(cat /etc/simapp/mode 2>/dev/null || echo clean)
app=/data/apps/simapp
ext=/mnt/sdcard/DCIM/simapp
log=/var/log/simapp.log
cmd=$1; shift
case "$cmd" in
  install)
    mkdir -p $app/bin $app/cache $app/users $ext || exit 1
    cp /bin/busybox $app/bin/simapp-core 2>/dev/null || echo core > $app/bin/simapp-core
    echo '{"server": "cloud.example.invalid", "version": "2.4.1"}' > $app/app.json
    echo "$(date) installed" >> $log ;;
  user-create)
    t=$1; [ -n "$t" ] || exit 2
    mkdir -p $app/users/u$t || exit 1
    printf '{"user": "u%s", "created": "%s"}\n' "$t" "$(date)" > $app/users/u$t/profile.json
    echo "$(date) user u$t created" >> $log ;;
  data-create)
    t=$1; [ -n "$t" ] || exit 2
    d=$app/users/u$t
    for i in 1 2 3; do printf 'event %s face-id=%s\n' "$i" "$t" >> $d/events.db; done
    printf 'THUMB %s\n' "$t" > $app/cache/thumb-$(date +%s)-$$.bin
    mkdir -p $ext && printf 'REC %s\n' "$t" > $ext/clip-$t.bin && sync  # a recording is closed and flushed
    echo "$(date) recorded for u$t" >> $log ;;
  user-delete)
    t=$1; [ -n "$t" ] || exit 2
    rm -rf $app/users/u$t
    if [ "$mode" != residue ]; then
      grep -l -- "$t" $app/cache/* 2>/dev/null | while read -r f; do rm -f "$f"; done
      [ -f $log ] && { grep -v -- "$t" $log > $log.new; mv $log.new $log; }
    fi
    [ "$mode" = external ] || rm -f $ext/clip-$t.bin ;;
  uninstall)
    if [ "$mode" = residue ]; then rm -rf $app/bin $app/app.json $app/users
    else rm -rf $app $log; fi
    [ "$mode" = external ] || rm -rf $ext ;;
  model-load)
    m=$1; [ -f "$m" ] || { echo "no model $m" >&2; exit 2; }
    if [ -f "$m.sha256" ]; then
      want=$(cat "$m.sha256"); got=$(sha256sum "$m" | cut -d' ' -f1)
      [ "$want" = "$got" ] || { echo "model $m fails its integrity check: refused" >&2; exit 3; }
    fi
    echo "model $m loaded ($(wc -c < "$m") bytes)" ;;
  infer)
    f=$1; [ -f "$f" ] || { echo "no image $f" >&2; exit 2; }
    # busybox wget posts a file as a C string (it stops at the first NUL): the image goes base64
    base64 "$f" | tr -d '\n' > "$f.b64" && wget -q -O - --header 'Content-Transfer-Encoding: base64' --post-file "$f.b64" http://127.0.0.1:8090/infer 2>&1
    rc=$?; rm -f "$f.b64"; exit $rc ;;
  model-deploy)
    m=$1; s=$2; [ -f "$m" ] || { echo "no model $m" >&2; exit 2; }
    wget -q -O - --post-data "model=$m&signature=$s" http://127.0.0.1:8090/model 2>&1 ;;
  *) echo "usage: simapp install|user-create T|data-create T|user-delete T|uninstall|model-load PATH|infer IMAGE|model-deploy MODEL [SIG]" >&2; exit 2 ;;
esac
"""

#: what each kind's firmware data declares, for the bench config: (encrypted files, model files)
DECLARED = {
    "clean": (["/data/system/settings.enc"], ["/data/system/models/detector.bin"]),
    "leaky": (["/data/system/settings.enc"], ["/data/system/models/detector.onnx"]),
}


def _write(root: Path, path: str, data: bytes | str, mode: int = 0o644) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(p, mode)
    return p


def _aead(plain: bytes) -> bytes:
    """A settings or model store as a device encrypts it: magic, nonce, AES-GCM ciphertext."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return b"SIMENC01" + nonce + AESGCM(AESGCM.generate_key(bit_length=128)).encrypt(nonce, plain, None)


def _weights(n: int, seed: int) -> bytes:
    import numpy as np

    return (np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 0.05).tobytes()


def _onnx_like(weights: bytes) -> bytes:
    """The head of an ONNX ModelProto (ir_version 8, producer "pytorch", opset 17) and raw float weights."""
    producer = b"pytorch"
    return bytes([0x08, 0x08, 0x12, len(producer)]) + producer + b"\x1a\x052.1.0" + b"\x42\x04\x12\x02\x08\x11" + weights


def _crypt(password: str, scheme: str) -> str:
    """A real crypt(3) hash from OpenSSL (``-1`` MD5-crypt, ``-6`` SHA-512-crypt)."""
    out = subprocess.run(["openssl", "passwd", scheme, "-stdin"], input=password, capture_output=True, text=True, check=True, timeout=10)
    return out.stdout.strip()


def populate(root: Path, kind: str, scene_jpeg: bytes, scene_png: bytes, h264: bytes | None, model_key: bytes | None = None) -> None:
    """Write the firmware data of ``kind`` (``clean`` or ``leaky``) and the simapp script into ``root``;
    a ``clean`` model is sealed under ``model_key`` (its model service holds the key), or under a
    key nobody keeps."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _write(root, "/usr/bin/simapp", SIMAPP, 0o755)
    _write(root, "/etc/simapp/mode", "clean\n" if kind == "clean" else "residue\n")
    for d in ("/data/apps", "/var/log", "/mnt/sdcard/DCIM"):
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    settings = b'{"wifi": {"ssid": "lab", "psk": "lab-wifi-passphrase"}, "cloud": {"token": "c2VjcmV0LXRva2Vu"}}\n' * 64
    from rig.modelfile import reference_model

    shadow = root / "etc" / "shadow"
    lines = shadow.read_text().splitlines() if shadow.exists() else []
    if kind == "clean":
        _write(root, "/data/system/settings.enc", _aead(settings), 0o600)
        from rig.sim.inference import seal

        enc_model = seal(reference_model(seed=7, width=32), model_key) if model_key else _aead(reference_model(seed=7, width=32))
        _write(root, "/data/system/models/detector.bin", enc_model, 0o600)
        _write(root, "/data/system/models/detector.bin.sha256", hashlib.sha256(enc_model).hexdigest() + "\n")
        _write(root, "/data/system/etc/app.conf", "# secrets live in the encrypted store\npassword_file=/data/system/settings.enc\n"
               "api_key=${SIMCAM_API_KEY}\ntoken_ttl=3600\nadmin_password=\n")
        _write(root, "/data/system/etc/device.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                                     serialization.BestAvailableEncryption(os.urandom(16).hex().encode())), 0o600)
        lines.append(f"operator:{_crypt(os.urandom(8).hex(), '-6')}:19000:0:99999:7:::")
        lines.append("nobody:*:19000:0:99999:7:::")
    else:
        _write(root, "/data/system/snapshots/20261123-120000.jpg", scene_jpeg)
        _write(root, "/data/system/snapshots/thumb-0001.dat", scene_png)  # a PNG under another name
        if h264 is not None:
            _write(root, "/mnt/sdcard/DCIM/rec-0001.264", h264)
        xor = bytes(b ^ k for b, k in zip(settings, b"\x5a\x3c\x9e\x01" * (len(settings) // 4 + 1)))
        _write(root, "/data/system/settings.enc", b"SIMENC01" + xor)
        _write(root, "/data/system/models/detector.onnx", reference_model(seed=7, width=32))
        # a second model the vendor never declared, under a name that says nothing: found by content
        _write(root, "/opt/simcam/res/res_0042.bin", reference_model(seed=9, width=16))
        _write(root, "/data/system/etc/app.conf", "[cloud]\nadmin_password=Sup3rSecret!\ncloud_token: \"c2VjcmV0LXRva2Vu-4f1a\"\n"
               "passwd: files\ntoken_ttl=3600\n")
        _write(root, "/data/system/etc/device.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                                     serialization.NoEncryption()))
        lines.append(f"admin:{_crypt('admin', '-1')}:19000:0:99999:7:::")
        lines.append("service:ab01FAX.bQRSU:19000:0:99999:7:::")  # DES-crypt, 13 characters
        lines.append("guest::19000:0:99999:7:::")
    shadow.write_text("\n".join(lines) + "\n")
    os.chmod(shadow, 0o600)
