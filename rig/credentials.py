"""Default and well-known credentials the rig tries, in order, bounded.

Sources: the vendor defaults most often found on cameras and embedded Linux boards
(root with an empty password, root/root, admin/admin, the defaults of common camera
SoC SDKs) and the head of the Mirai botnet's list, which is what attackers try first.
A finding names the entry by its index here, never by its password, so evidence does
not spread credentials that still work on other units.
"""

from __future__ import annotations

#: (user, password) tried at a serial login prompt, most common first. Each failure
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


def describe(index: int) -> str:
    """How a finding names a credential: user and list position, never the password."""
    user, _ = CONSOLE_CREDENTIALS[index]
    return f"user {user!r} with default password #{index + 1} of rig/credentials.py (password redacted)"

#: users the SSH "none" method is tried for (OpenSSH lets a user with an empty password in
#: with it when PermitEmptyPasswords is on): root and the accounts embedded firmware ships
NONE_AUTH_USERS: tuple[str, ...] = ("root", "admin", "user", "guest", "support", "default")

#: (user, password) tried against HTTP Basic auth on a device's web interface.
HTTP_CREDENTIALS: tuple[tuple[str, str], ...] = (
    ("admin", "admin"),
    ("admin", ""),
    ("admin", "12345"),
    ("admin", "password"),
    ("root", "root"),
)

#: (user, password) tried at an FTP server; anonymous first, as scanners do.
FTP_CREDENTIALS: tuple[tuple[str, str], ...] = (
    ("anonymous", "privrig@example.invalid"),
    ("ftp", "ftp"),
    ("admin", "admin"),
    ("root", "root"),
)
