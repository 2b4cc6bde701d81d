"""Basic and Digest answers, checked against RFC 7616's own examples and odd real headers."""

from __future__ import annotations

import base64

import pytest

from drivers.httpauth import Challenge, Credentials, DigestSession, authorization, challenges, choose, credential_params, digest_response

RFC = dict(realm="http-auth@example.org", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
           opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", qop="auth")
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
MUFASA = Credentials("Mufasa", "Circle of Life")


@pytest.mark.parametrize("algorithm, expected", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_digest_matches_rfc7616_section_3_9_1(algorithm, expected):
    ch = Challenge("digest", {**RFC, "algorithm": algorithm})
    header = authorization(ch, MUFASA, "GET", "/dir/index.html", DigestSession(ch, cnonce=CNONCE))
    params = credential_params(header)
    assert params["response"] == expected
    assert params["nc"] == "00000001" and params["qop"] == "auth" and params["opaque"] == RFC["opaque"]
    assert "Circle of Life" not in header


def test_digest_counts_requests_and_sess_variants_verify():
    ch = Challenge("digest", {"realm": "cam", "nonce": "n0", "qop": "auth", "algorithm": "SHA-256-sess"})
    sess = DigestSession(ch)
    authorization(ch, MUFASA, "GET", "/a", sess)
    p = credential_params(authorization(ch, MUFASA, "DESCRIBE", "rtsp://h/main", sess))
    assert p["nc"] == "00000002"
    assert p["response"] == digest_response("Mufasa", "cam", "Circle of Life", "DESCRIBE", "rtsp://h/main", "n0", "SHA-256-sess",
                                            p["nc"], p["cnonce"], "auth")


def test_rfc2069_digest_without_qop():
    ch = Challenge("digest", {"realm": "IP Camera", "nonce": "abc"})
    p = credential_params(authorization(ch, Credentials("admin", "12345"), "DESCRIBE", "rtsp://198.18.0.20:554/main"))
    assert "qop" not in p and "nc" not in p
    assert p["response"] == digest_response("admin", "IP Camera", "12345", "DESCRIBE", "rtsp://198.18.0.20:554/main", "abc")


def test_basic_is_utf8_base64():
    header = authorization(Challenge("basic", {"realm": "x"}), Credentials("ad", "pä:ss"), "GET", "/")
    assert base64.b64decode(header.split()[1]).decode() == "ad:pä:ss"


def test_several_challenges_in_one_header_and_the_strongest_is_chosen():
    chs = challenges('Basic realm="cam", Digest realm="cam", nonce="1", qop="auth,auth-int", algorithm=MD5, '
                     'Digest realm="cam", nonce="2", qop="auth", algorithm=SHA-256', 'Negotiate, NTLM')
    assert [c.scheme for c in chs] == ["basic", "digest", "digest", "negotiate", "ntlm"]
    assert choose(chs).params["nonce"] == "2"
    assert choose(challenges('Basic realm="x"')).scheme == "basic"


@pytest.mark.parametrize("header", ['Digest realm="x", nonce="1", algorithm=SHA-512-256', 'Digest realm="x", nonce="1", qop="auth-int"',
                                    'Digest realm="x"', "Negotiate", "", "====", 'Digest realm="unterminated, nonce=1'])
def test_challenges_the_rig_cannot_answer_are_not_chosen(header):
    assert choose(challenges(header)) is None


def test_header_is_bounded_and_escaped_quotes_read():
    chs = challenges('Digest realm="a \\"quoted\\" realm", nonce="n"' + " " * 100_000 + ', Basic realm="late"')
    assert chs[0].params["realm"] == 'a "quoted" realm'
    assert all(c.scheme != "basic" for c in chs)  # past the 8 KiB bound
