"""The simulated camera's RTSP output: GStreamer's RTSP server re-serving the camera app.

Run by the simulated bench inside a device's network namespace, with Debian's Python
(``/usr/bin/python3``: the GStreamer bindings come from Debian's python3-gi and
gir1.2-gst-rtsp-server-1.0, not from PyPI)::

    /usr/bin/python3 -m rig.sim.rtsp --port 8554 --path /main --source http://127.0.0.1:8080/stream.mjpg

Each RTSP client gets its own pipeline that pulls the camera app's MJPEG over HTTP inside
the namespace and packetises the JPEG frames as RTP/JPEG (RFC 2435). The RTSP output is
therefore a second real output of the same camera: it follows the shutter and the face
filter exactly as the HTTP output does. Without ``--accounts`` there is no authentication
(a violating device's output); with it, every request needs RTSP Digest (GStreamer's
RTSPAuth, MD5) for one of the file's ``user:password`` accounts.

SIGTERM and SIGINT stop the main loop.
"""

from __future__ import annotations

import argparse
import signal
import sys


def pipeline(source: str) -> str:
    """The GStreamer launch line of one client's media: HTTP MJPEG in, RTP/JPEG out as ``pay0``."""
    if not source.startswith("http://127.0.0.1:") or any(c in source for c in " !()\"'"):
        raise ValueError(f"source must be the camera app's loopback URL, got {source!r}")
    return (f"( souphttpsrc location={source} is-live=true do-timestamp=true timeout=10 "
            "! multipartdemux ! jpegparse ! rtpjpegpay name=pay0 pt=26 )")


def main(argv: list[str]) -> int:
    """Serve ``--path`` on ``--port`` until SIGTERM; return the exit status."""
    ap = argparse.ArgumentParser(prog="rig.sim.rtsp")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/main")
    ap.add_argument("--source", required=True)
    ap.add_argument("--accounts", help="file of user:password lines: RTSP Digest for each")
    args = ap.parse_args(argv)

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("0.0.0.0")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(args.source))
    factory.set_shared(False)  # a client per pipeline: one client's end never ends another's stream
    if args.accounts:
        auth = GstRtspServer.RTSPAuth()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        with open(args.accounts) as fh:
            for line in fh:
                if ":" in line and not line.lstrip().startswith("#"):
                    user, _, password = line.rstrip("\n").partition(":")
                    auth.add_digest(user, password, token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"rig.sim.rtsp: cannot listen on {args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"rig.sim.rtsp: rtsp://0.0.0.0:{args.port}{args.path} from {args.source}", file=sys.stderr, flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
