"""Helpers shared by the memory tests: a network guard and settings for a given folder.

Not a conftest: only the memory tests need them, and they import them explicitly.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.config import Settings, load_settings


class NetworkTouched(AssertionError):
    """Raised when code under test tries to reach a non-loopback address."""


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
    elif isinstance(address, (str, bytes)):
        return True  # AF_UNIX socket path
    else:
        return False
    if host in {"localhost", ""}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolving it already means reaching out


@contextmanager
def no_network(monkeypatch) -> Iterator[list[object]]:
    """Make every non-loopback connect (and DNS lookup) raise; yields the attempted addresses.

    Also makes chromadb's own default embedding function fail loudly if anything builds and
    calls it: that function downloads its model from the internet on first use.
    """
    attempts: list[object] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(sock, address):
        if not _is_loopback(address):
            attempts.append(address)
            raise NetworkTouched(f"network access attempted: {address!r}")
        return real_connect(sock, address)

    def guarded_connect_ex(sock, address):
        if not _is_loopback(address):
            attempts.append(address)
            raise NetworkTouched(f"network access attempted: {address!r}")
        return real_connect_ex(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            attempts.append(host)
            raise NetworkTouched(f"DNS lookup attempted: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)

    from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2

    def refuse_download(*_args, **_kwargs):
        attempts.append("chromadb default embedding download")
        raise NetworkTouched("chromadb's default embedding function tried to download its model")

    monkeypatch.setattr(onnx_mini_lm_l6_v2.ONNXMiniLM_L6_V2, "_download_model_if_not_exists", refuse_download)
    yield attempts


def settings_for(data_dir: Path, **overrides: str) -> Settings:
    """Settings pointing at ``data_dir`` and nothing from the developer's environment."""
    env = {"HOMEPOT_AI_DATA_DIR": str(data_dir), **overrides}
    return load_settings(env=env, dotenv=data_dir / ".env-absent")
