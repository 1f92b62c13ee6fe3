"""Throwaway certificates for TLS tests, made with the openssl command line."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Authority:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # what signed the server's certificate
    server_cert: Path
    server_key: Path
    other_ca: Path  # a CA that signed nothing of ours: connecting with it must fail


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_authority(directory: Path, name: str) -> Authority:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", key, "-out", cert,
    )  # fmt: skip
    key.chmod(0o600)
    return Authority(cert, key)


def make_certificates(directory: Path, names: str = "IP:127.0.0.1,DNS:localhost") -> Certificates:
    """A CA and a server certificate for `names` (subjectAltName syntax)."""
    ca = make_authority(directory, "test-ca")
    other = make_authority(directory, "other-ca")
    key, request = directory / "server.key", directory / "server.csr"
    cert, extensions = directory / "server.crt", directory / "server.ext"
    extensions.write_text(f"subjectAltName={names}\n")
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=localhost", "-keyout", key, "-out", request,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-days", "2", "-extfile", extensions, "-out", cert,
    )  # fmt: skip
    key.chmod(0o600)
    return Certificates(ca=ca.cert, server_cert=cert, server_key=key, other_ca=other.cert)


def mosquitto_tls(certificates: Certificates) -> tuple[str, ...]:
    """A MosquittoBroker's extra_config for TLS with these certificates (the key made
    readable: Mosquitto reads it as the test's user)."""
    certificates.server_key.chmod(0o644)
    return (
        f"cafile {certificates.ca}",
        f"certfile {certificates.server_cert}",
        f"keyfile {certificates.server_key}",
    )
