"""The transcript's redaction of raw captures."""

from __future__ import annotations


def test_a_raw_stream_is_redacted_even_where_a_secret_is_split_across_reads() -> None:
    """console.raw: a password the rig typed that the device echoes never lands in the raw capture,
    whichever read boundaries split it; everything else is kept byte for byte."""
    from drivers.transcript import Transcript

    tr = Transcript(None, secrets=["simcam1234"])
    tr.add_word("admin")
    stream = b"login: admin\r\nPassword: simcam1234\r\n$ echo simcam1234 adminx\r\n" * 3
    for size in (1, 2, 3, 7, 10, 11, 64, len(stream)):
        carry, out = b"", b""
        for i in range(0, len(stream), size):
            got, carry = tr.redact_stream(carry, stream[i:i + size])
            out += got
        out += tr.redact(carry)
        assert b"simcam1234" not in out and b"simcam" not in out.replace(b"[redacted]", b""), size
        assert out.count(b"[redacted]") == 9 and b"adminx" in out, (size, out)
