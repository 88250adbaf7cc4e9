"""The private CA and certificates of MQTT over TLS (twin_stream/devtools/stack/certs.py) and
`twin-stream certs make`: the layout, who may read the keys, what making them again keeps."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from typer.testing import CliRunner

from twin_stream.cli import app
from twin_stream.devtools.stack.certs import (
    CertificateAuthority,
    client_files,
    server_files,
    write_pair,
)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_certs_make_writes_one_folder_per_party_with_private_keys(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    result = CliRunner().invoke(
        app,
        ["certs", "make", str(out), "--host", "mosquitto", "--host", "127.0.0.1"]
        + ["--client", "bridge", "--client", "pump-0001"],
    )
    assert result.exit_code == 0, result.output
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "ca/ca.crt",
        "ca/ca.key",
        "clients/bridge/ca.crt",
        "clients/bridge/client.crt",
        "clients/bridge/client.key",
        "clients/pump-0001/ca.crt",
        "clients/pump-0001/client.crt",
        "clients/pump-0001/client.key",
        "public/ca.crt",
        "server/ca.crt",
        "server/server.crt",
        "server/server.key",
    ]
    assert [str(p.relative_to(out)) for p in out.rglob("*.key") if _mode(p) != 0o600] == []
    ca = _cert(out / "ca" / "ca.crt")
    assert (out / "public" / "ca.crt").read_bytes() == (out / "ca" / "ca.crt").read_bytes()
    server = _cert(out / "server" / "server.crt")
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mosquitto"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    pump = _cert(out / "clients" / "pump-0001" / "client.crt")
    pump.verify_directly_issued_by(ca)
    usage = pump.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert "ca.key" in result.output  # it says which file to keep private


def test_making_again_keeps_what_is_still_good_and_renews_the_rest(tmp_path: Path) -> None:
    first = server_files(tmp_path, ["mosquitto"])
    ca_before = (tmp_path / "ca" / "ca.crt").read_bytes()
    cert_before = first.cert_file.read_bytes()
    client_before = client_files(tmp_path, "bridge").cert_file.read_bytes()

    # Same hosts: nothing changes.
    assert server_files(tmp_path, ["mosquitto"]).cert_file.read_bytes() == cert_before
    assert client_files(tmp_path, "bridge").cert_file.read_bytes() == client_before
    # Another host list: a new server certificate from the same CA.
    again = server_files(tmp_path, ["mosquitto", "broker.example.org"])
    assert again.cert_file.read_bytes() != cert_before
    assert (tmp_path / "ca" / "ca.crt").read_bytes() == ca_before
    _cert(again.cert_file).verify_directly_issued_by(_cert(tmp_path / "ca" / "ca.crt"))

    # A server certificate about to expire is issued again.
    ca = CertificateAuthority.load(tmp_path / "ca" / "ca.crt", tmp_path / "ca" / "ca.key")
    now = dt.datetime.now(dt.UTC)
    soon, key = ca.issue("mosquitto", hosts=["mosquitto"], not_after=now + dt.timedelta(days=2))
    write_pair(again.cert_file, soon, again.key_file, key)
    renewed = _cert(server_files(tmp_path, ["mosquitto"]).cert_file)
    assert renewed.not_valid_after_utc - now > dt.timedelta(days=300)


def test_a_bad_client_name_or_no_host_is_a_one_line_error(tmp_path: Path) -> None:
    no_host = CliRunner().invoke(app, ["certs", "make", str(tmp_path / "a")])
    assert no_host.exit_code != 0 and "--host" in no_host.output
    bad = CliRunner().invoke(
        app, ["certs", "make", str(tmp_path / "b"), "--host", "h", "--client", "../escape"]
    )
    assert bad.exit_code == 1
    assert "not a usable client name" in bad.output
    assert "Traceback" not in bad.output
    assert not (tmp_path / "b" / "escape").exists()
