"""A local certificate authority for the stack's TLS at Envoy (`make up`).

`local_tls(directory)` makes, once, a CA (ca.pem) and a certificate for localhost and
127.0.0.1 signed by it (server.pem, server-key.pem), with the openssl command; later
calls reuse them. Clients trust ca.pem: the SDK's `connect(..., ca_file=...)`, the load
generator's --ca-file, grpcurl's -cacert. The CA's key stays in the directory, readable
by its owner only. Kubernetes takes the certificate from a Secret instead.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HOSTS = ("DNS:localhost", "IP:127.0.0.1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def local_tls(directory: str | os.PathLike) -> TlsFiles:
    d = Path(directory)
    files = TlsFiles(d / "ca.pem", d / "server.pem", d / "server-key.pem")
    if all(p.exists() for p in (files.ca, files.certificate, files.key)):
        return files
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "3650", "-subj", "/CN=bourse local CA",
             "-keyout", str(d / "ca-key.pem"), "-out", str(files.ca))
    _openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", str(files.key), "-out", str(d / "server.csr"))
    extensions = d / "server.ext"
    extensions.write_text(f"subjectAltName={','.join(HOSTS)}\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(files.ca), "-CAkey", str(d / "ca-key.pem"),
             "-CAcreateserial", "-days", "825", "-extfile", str(extensions), "-out", str(files.certificate))
    return files
