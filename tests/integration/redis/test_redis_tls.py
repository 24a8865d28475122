"""Redis over TLS (`rediss://` + a private CA from settings) against a real TLS redis-server, and secrets never
shown: a password in the URL appears in no output, log record or error of `semrec publish` / `semrec refresh`."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RedisServer, free_port
from redis.exceptions import RedisError
from semrec.cli import build_app
from semrec.errors import UserError
from semrec.settings import redis_settings
from semrec.store import current_version, load_bundle
from semrec_worker.commands.publish import PublishConfig, publish
from serving_helpers import tiny_bundle
from typer.testing import CliRunner


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_test_ca(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it (openssl CLI, EC P-256)."""
    directory.mkdir(parents=True, exist_ok=True)
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=semrec-test-ca", cwd=directory)  # fmt: skip
    _openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=directory)
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "1", "-extfile", "san.cnf", cwd=directory)  # fmt: skip
    return {"ca": directory / "ca.crt", "cert": directory / "server.crt", "key": directory / "server.key"}


class TLSRedisServer(RedisServer):
    """redis-server listening only on a TLS loopback port (`--port 0 --tls-port N`), clients not required to
    present certificates. Skips the test when the binary was built without TLS or openssl is missing.
    Starts its own process (other arguments, TLS-aware start-up checks); `stop` is RedisServer's."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test` (it bootstraps it)")
        if shutil.which("openssl") is None:
            pytest.skip("no openssl CLI to make a test CA")
        self.certs = make_test_ca(directory / "tls")
        log = directory / "redis-tls.log"
        for _attempt in range(3):  # a free port can be taken before redis-server binds it: retry on a new one
            self.port = free_port()
            if self._start(binary, directory, log):
                return
        self.stop()
        pytest.fail("TLS redis-server did not start")

    def _start(self, binary: str, directory: Path, log: Path) -> bool:
        """True once the TLS port answers; False when the port was taken (retry); skip/fail otherwise."""
        args = [binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(self.certs["cert"]), "--tls-key-file", str(self.certs["key"]),
                "--tls-ca-cert-file", str(self.certs["ca"]), "--tls-auth-clients", "no",
                "--save", "", "--appendonly", "no", "--dir", str(directory)]  # fmt: skip
        with log.open("wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                text = log.read_text(errors="replace")
                if "tls" in text.lower() and ("not supported" in text.lower() or "bad directive" in text.lower()):
                    pytest.skip(f"this redis-server has no TLS support: {text.strip().splitlines()[-1]}")
                if "address already in use" in text.lower():
                    return False
                pytest.fail(f"TLS redis-server exited: {text[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("TLS redis-server did not start")

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"


@pytest.fixture
def tls_redis(tmp_path):
    server = TLSRedisServer(tmp_path)
    yield server
    server.stop()


def test_publish_and_load_over_tls_with_private_ca(tls_redis, tmp_path, monkeypatch):
    bundle = tiny_bundle(40)
    bundle.save(tmp_path / "run" / "bundle")
    monkeypatch.delenv("SEMREC_REDIS_CA_CERT", raising=False)
    with pytest.raises(UserError, match="(?i)certificate|ssl"):  # the private CA is not trusted by default
        publish(PublishConfig(run=tmp_path / "run", redis=tls_redis.url, catalog="tls"))

    monkeypatch.setenv("SEMREC_REDIS_CA_CERT", str(tls_redis.certs["ca"]))
    settings = redis_settings(tls_redis.url)
    assert settings.redis_ca_cert == tls_redis.certs["ca"]
    report = publish(PublishConfig(run=tmp_path / "run", redis=tls_redis.url, catalog="tls"))
    assert report.version == "1"
    client = settings.client()
    assert client.connection_pool.connection_kwargs.get("ssl_ca_certs") == str(tls_redis.certs["ca"])
    loaded = load_bundle(client, "tls")
    assert loaded.version == "1" and loaded.bundle.item_ids == bundle.item_ids
    np.testing.assert_array_equal(loaded.bundle.item_vectors, bundle.item_vectors)
    with pytest.raises(RedisError):  # plain text to the TLS port is refused
        redis_settings(f"redis://127.0.0.1:{tls_redis.port}/0").client(socket_timeout=1).ping()


def _cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), args)
    return result.exit_code, result.output + (getattr(result, "stderr", "") or "") + repr(result.exception or "")


def test_password_in_url_never_reaches_output_logs_or_errors(tmp_path, caplog, monkeypatch):
    secret = "pw-s3cret-xyz"
    monkeypatch.delenv("SEMREC_REDIS_PASSWORD", raising=False)
    server = RedisServer(tmp_path, password=secret)
    caplog.set_level(logging.DEBUG)
    try:
        tiny_bundle(30).save(tmp_path / "run" / "bundle")
        good = f"redis://:{secret}@127.0.0.1:{server.port}/0"
        code, text = _cli(["publish", "--run", str(tmp_path / "run"), "--redis", good, "--catalog", "sec"])
        assert code == 0, text
        assert "***" in text and secret not in text
        assert current_version(redis_settings(good).client(), "sec") == "1"

        wrong = f"redis://:wrong-{secret}@127.0.0.1:{server.port}/0"
        code, text = _cli(["publish", "--run", str(tmp_path / "run"), "--redis", wrong, "--catalog", "sec"])
        assert code == 2 and "error:" in text and secret not in text

        closed = f"redis://user:{secret}@127.0.0.1:{free_port()}/0"  # nothing listens there
        code, text = _cli(["refresh", "--items", "synthetic", "--redis", closed, "--catalog", "sec"])
        assert code == 2 and "error:" in text and secret not in text
        code, text = _cli(["publish", "--run", str(tmp_path / "run"), "--redis", f"http://:{secret}@h/0"])
        assert code == 2 and "***" in text and secret not in text
    finally:
        server.stop()
    assert not any(secret in record.getMessage() for record in caplog.records)
