"""The twin API's tokens and roles (twin_stream.auth), the ``tokens`` command, and the guard on
the worker's real Faust web app (twin_stream.worker.web_auth), served on loopback by aiohttp's
test server (the views that need Kafka are tested on the real services, in
tests/integration/test_api_auth.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from twin_stream.auth import (
    ROLES,
    STORE_FORMAT,
    Principal,
    TokenFile,
    TokenStore,
    hash_token,
    required_role,
    verify_token,
)
from twin_stream.cli import app as cli
from twin_stream.errors import ConfigError, CredentialsError
from twin_stream.worker.app import WorkerConfig, create_app
from twin_stream.worker.web_auth import PRINCIPAL, forwarded_headers

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


# --- hashing and the store ---------------------------------------------------------------


def test_a_token_is_stored_as_a_salted_scrypt_hash_that_verifies_it() -> None:
    store, token = TokenStore().add("alice", "operator", now=NOW)
    (record,) = store.records
    kdf, n, r, p, salt, digest = record.hash.split("$")
    assert kdf == "scrypt" and len(base64.b64decode(salt)) == 16
    expected = hashlib.scrypt(
        token.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    assert base64.b64decode(digest) == expected
    assert token not in store.to_json() and token not in repr(record)
    # The same token hashed twice: two salts, two hashes, both verify it.
    again = hash_token(token)
    assert again != record.hash and verify_token(token, again)
    assert not verify_token(token + "x", record.hash)
    assert not verify_token(token, "md5$whatever")


def test_the_store_authenticates_only_its_own_live_tokens() -> None:
    store, alice = TokenStore().add("alice", "operator", now=NOW)
    store, bob = store.add("bob", "viewer", now=NOW)
    assert store.authenticate(alice) == Principal("alice", "operator")
    assert store.authenticate(bob) == Principal("bob", "viewer")
    prefix, key_id, secret = alice.split("_", 2)
    assert (prefix, len(key_id), len(secret)) == ("tsk", 8, 43)
    forged = f"tsk_{key_id}_{'A' * 43}"  # a real key id, another secret
    for bad in (forged, "", "Bearer", alice[:-2], f"tsk_00000000_{secret}", alice + " "):
        assert store.authenticate(bad) is None, bad
    revoked = store.revoke("alice")
    assert revoked.authenticate(alice) is None
    assert revoked.authenticate(bob) == Principal("bob", "viewer")


def test_the_store_refuses_bad_names_roles_duplicates_and_unknown_revocations() -> None:
    store, _ = TokenStore().add("alice", "admin", now=NOW)
    with pytest.raises(CredentialsError, match="exists"):
        store.add("alice", "viewer", now=NOW)
    with pytest.raises(CredentialsError, match="unknown role 'root'"):
        store.add("carol", "root", now=NOW)
    with pytest.raises(CredentialsError, match="does not match"):
        store.add("no spaces", "viewer", now=NOW)
    with pytest.raises(CredentialsError, match="no token named 'carol'"):
        store.revoke("carol")


def test_the_store_round_trips_through_its_json_and_refuses_what_is_not_one() -> None:
    store, token = TokenStore().add("alice", "operator", now=NOW)
    text = store.to_json()
    assert json.loads(text)["format"] == STORE_FORMAT
    again = TokenStore.from_json(text, "x")
    assert again == store and again.authenticate(token) == Principal("alice", "operator")
    for bad in ("{", "[]", '{"format": "other", "tokens": []}', text.replace("operator", "god")):
        with pytest.raises(ConfigError, match="^somewhere: not a tokens file"):
            TokenStore.from_json(bad, "somewhere")


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/twins", "viewer"),
        ("HEAD", "/twins/", "viewer"),
        ("GET", "/twins/pump-0001", "viewer"),
        ("GET", "/alerts", "viewer"),
        ("GET", "/audit", "viewer"),
        ("PUT", "/twins/pump-0001/desired", "operator"),
        ("POST", "/alerts/pump-0001-anomaly-1/ack", "operator"),
        ("POST", "/alerts/pump-0001-anomaly-1/shelve", "operator"),
        ("PUT", "/twins/pump-0001", "admin"),
        ("DELETE", "/twins/pump-0001/desired", "admin"),
        ("POST", "/audit", "admin"),
        ("GET", "/", "admin"),
        ("GET", "/router", "admin"),
        ("GET", "/router/twins/get", "admin"),
        ("GET", "/table/twins", "admin"),
        ("GET", "/stats", "admin"),
        ("GET", "/graph", "admin"),
        ("GET", "/twinsx", "admin"),
    ],
)
def test_each_route_needs_its_role_and_anything_else_admin(
    method: str, path: str, role: str
) -> None:
    assert required_role(method, path) == role


def test_roles_grow() -> None:
    assert ROLES == ("viewer", "operator", "admin")
    for i, have in enumerate(ROLES):
        assert [Principal("x", have).may(need) for need in ROLES] == [j <= i for j in range(3)]


def test_the_tokens_file_is_the_owners_only_and_changed_whole(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "dir" / "tokens.json")
    assert tokens.load() == TokenStore() and tokens.signature() is None
    made: list[str] = []

    def add(store: TokenStore) -> TokenStore:
        store, token = store.add("alice", "admin", now=NOW)
        made.append(token)
        return store

    tokens.change(add)
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    assert tokens.load().authenticate(made[0]) == Principal("alice", "admin")
    before = tokens.signature()
    tokens.change(lambda s: s.revoke("alice"))
    assert tokens.signature() != before and tokens.load().records == ()
    with pytest.raises(CredentialsError):
        tokens.change(lambda s: s.revoke("alice"))
    assert [p.name for p in tokens.path.parent.iterdir() if p.name.endswith(".tmp")] == []


# --- the tokens command -----------------------------------------------------------------


@pytest.fixture
def tokens_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "api-tokens.json"
    monkeypatch.setenv("TWIN_API__TOKENS_FILE", str(path))
    monkeypatch.delenv("TWIN_API__TOKENS", raising=False)
    return path


def test_tokens_add_prints_the_token_once_and_stores_only_its_hash(tokens_env: Path) -> None:
    result = CliRunner().invoke(cli, ["tokens", "add", "alice", "--role", "operator"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("tsk_") and result.stdout.count(token) == 1
    assert token not in result.stderr
    stored = tokens_env.read_text()
    assert token not in stored and token.split("_", 2)[2] not in stored
    store = TokenFile(tokens_env).load()
    assert store.authenticate(token) == Principal("alice", "operator")
    # A second token: another secret; the first one still works.
    second = CliRunner().invoke(cli, ["tokens", "add", "bob"])  # --role viewer by default
    assert second.exit_code == 0 and second.stdout.strip() != token
    store = TokenFile(tokens_env).load()
    assert store.authenticate(token) is not None
    assert store.authenticate(second.stdout.strip()) == Principal("bob", "viewer")


def test_tokens_list_shows_names_roles_and_times_never_secrets(tokens_env: Path) -> None:
    added = CliRunner().invoke(cli, ["tokens", "add", "alice", "--role", "admin"])
    token = added.stdout.strip()
    listed = CliRunner().invoke(cli, ["tokens", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert set(row) == {"name", "role", "created"}
    assert (row["name"], row["role"]) == ("alice", "admin")
    assert datetime.fromisoformat(row["created"]).tzinfo is not None
    table = CliRunner().invoke(cli, ["tokens", "list"])
    assert "alice" in table.stdout and "admin" in table.stdout
    record = TokenFile(tokens_env).load().records[0]
    for secret in (token, record.hash, record.hash.split("$")[-1]):
        assert secret not in listed.output and secret not in table.output


def test_tokens_revoke_removes_it_and_an_unknown_name_is_one_line(tokens_env: Path) -> None:
    token = CliRunner().invoke(cli, ["tokens", "add", "alice"]).stdout.strip()
    assert CliRunner().invoke(cli, ["tokens", "revoke", "alice"]).exit_code == 0
    assert TokenFile(tokens_env).load().authenticate(token) is None
    again = CliRunner().invoke(cli, ["tokens", "revoke", "alice"])
    assert again.exit_code == 1
    assert "error: no token named 'alice'" in again.output and "Traceback" not in again.output
    bad_role = CliRunner().invoke(cli, ["tokens", "add", "carol", "--role", "root"])
    assert bad_role.exit_code == 1 and "unknown role 'root'" in bad_role.output


def test_tokens_from_the_environment_are_listed_and_not_edited(
    tokens_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = TokenStore().add("compose-admin", "admin", now=NOW)
    monkeypatch.setenv("TWIN_API__TOKENS", store.to_json())
    listed = CliRunner().invoke(cli, ["tokens", "list", "--json"])
    assert [r["name"] for r in json.loads(listed.stdout)] == ["compose-admin"]
    refused = CliRunner().invoke(cli, ["tokens", "add", "alice"])
    assert refused.exit_code == 1 and "TWIN_API__TOKENS is set" in refused.output
    assert not tokens_env.exists()


def test_a_token_is_never_a_command_line_option() -> None:
    result = CliRunner().invoke(cli, ["tokens", "add", "alice", "--token", "tsk_x"])
    assert result.exit_code == 2


# --- the guard on the worker's web app ---------------------------------------------------


def _tokens(path: Path, *roles: str) -> dict[str, str]:
    """One token per role, named after it, in the tokens file at ``path``."""
    made: dict[str, str] = {}

    def add(store: TokenStore) -> TokenStore:
        for role in roles:
            store, made[role] = store.add(role, role, now=NOW)
        return store

    TokenFile(path).change(add)
    return made


Call = Callable[..., Awaitable[tuple[int, Any, Any]]]


def _serve(app: Any, check: Callable[[Call], Awaitable[None]]) -> None:
    """Serve the worker's web app on loopback and run ``check`` with a request function."""

    async def main() -> None:
        app.web.init_server()  # Faust's own blueprints, as the worker applies them at start
        async with TestClient(TestServer(app.web.web_app)) as client:

            async def call(
                method: str, path: str, token: str | None = None, header: str | None = None
            ) -> tuple[int, Any, Any]:
                headers = {"Authorization": header or f"Bearer {token}"} if token or header else {}
                async with client.request(method, path, headers=headers) as response:
                    text = await response.text()
                    try:
                        body = json.loads(text)
                    except ValueError:
                        body = text
                    return response.status, body, response.headers

            await check(call)

    asyncio.run(main())


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[Any, dict[str, str], Path]:
    """The worker's app (memory tables, no Kafka) and a token per role, from a tokens file."""
    path = tmp_path / "tokens.json"
    tokens = _tokens(path, *ROLES)
    config = WorkerConfig(
        bootstrap="127.0.0.1:9",
        data_dir=tmp_path / "data",
        web_port=6066,
        store="memory://",
        tokens_file=path,
    )
    return create_app(config), tokens, path


def test_no_token_or_a_bad_one_is_401_with_a_bearer_challenge(
    guarded: tuple[Any, dict[str, str], Path],
) -> None:
    app, tokens, _ = guarded

    async def check(call: Call) -> None:
        status, body, headers = await call("GET", "/twins?scope=local")
        assert status == 401
        assert body["required_role"] == "viewer" and "Bearer" in body["error"]
        assert headers["WWW-Authenticate"] == 'Bearer realm="twin-stream"'
        for header in (
            "Bearer tsk_00000000_" + "x" * 43,
            "Bearer " + tokens["admin"][:-1] + ("x" if tokens["admin"][-1] != "x" else "y"),
            "Basic " + base64.b64encode(b"admin:" + tokens["admin"].encode()).decode(),
            "Bearer",
        ):
            status, body, headers = await call("PUT", "/twins/pump-0001/desired", header=header)
            assert status == 401, header
            assert body["required_role"] == "operator"
            assert headers["WWW-Authenticate"].startswith('Bearer realm="twin-stream"')

    _serve(app, check)


def test_each_role_gets_what_it_may_and_403_for_the_rest(
    guarded: tuple[Any, dict[str, str], Path],
) -> None:
    app, tokens, _ = guarded

    async def check(call: Call) -> None:
        for role in ROLES:
            status, body, _ = await call("GET", "/twins?scope=local", tokens[role])
            assert (status, body) == (200, []), role
        status, body, _ = await call("PUT", "/twins/pump-0001/desired", tokens["viewer"])
        assert status == 403
        assert body["required_role"] == "operator" and "'viewer'" in body["error"]
        status, body, _ = await call("POST", "/alerts/a-1/ack", tokens["viewer"])
        assert (status, body["required_role"]) == (403, "operator")
        # An operator passes the guard (the view then answers: there is no such alert here).
        status, body, _ = await call("POST", "/alerts/a-1/ack", tokens["operator"])
        assert status not in (401, 403), body

    _serve(app, check)


@pytest.mark.parametrize("path", ["/router", "/table", "/table/twins", "/", "/stats", "/graph"])
def test_fausts_own_views_are_off_and_guarded_for_admin(
    guarded: tuple[Any, dict[str, str], Path], path: str
) -> None:
    app, tokens, _ = guarded

    async def check(call: Call) -> None:
        for role in ("viewer", "operator"):
            status, body, _ = await call("GET", path, tokens[role])
            assert (status, body["required_role"]) == (403, "admin"), role
        assert (await call("GET", path))[0] == 401
        status, body, _ = await call("GET", path, tokens["admin"])
        # Disabled: 404; only Faust's plain index is left at "/", and only for admin.
        assert status == (200 if path == "/" else 404), body
        assert status == 404 or body == {"status": "OK"}

    _serve(app, check)


def test_a_revoked_token_is_refused_from_the_next_request_on(
    guarded: tuple[Any, dict[str, str], Path],
) -> None:
    app, tokens, path = guarded

    async def check(call: Call) -> None:
        assert (await call("GET", "/twins?scope=local", tokens["operator"]))[0] == 200
        TokenFile(path).change(lambda s: s.revoke("operator"))
        status, body, _ = await call("GET", "/twins?scope=local", tokens["operator"])
        assert (status, body["error"]) == (401, "unknown or revoked token")
        assert (await call("GET", "/twins?scope=local", tokens["viewer"]))[0] == 200

    _serve(app, check)


def test_the_views_see_the_caller_and_forward_its_credentials(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    tokens = _tokens(path, "operator")
    config = WorkerConfig(
        bootstrap="127.0.0.1:9",
        data_dir=tmp_path / "data",
        web_port=6066,
        store="memory://",
        tokens_file=path,
    )
    app = create_app(config)
    seen: list[tuple[Principal, dict[str, str]]] = []

    import faust

    @app.page("/twins/{device_id}/whoami")
    class WhoAmI(faust.web.View):
        async def get(self, request: Any, device_id: str) -> Any:
            seen.append((request[PRINCIPAL], forwarded_headers(request)))
            return self.json({"device_id": device_id})

    async def check(call: Call) -> None:
        status, _, _ = await call("GET", "/twins/pump-0001/whoami", tokens["operator"])
        assert status == 200

    _serve(app, check)
    assert seen == [
        (Principal("operator", "operator"), {"Authorization": f"Bearer {tokens['operator']}"})
    ]


def test_tokens_from_the_environment_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    from_file = _tokens(path, "admin")
    store, from_env = TokenStore().add("compose", "viewer", now=NOW)
    config = WorkerConfig(
        bootstrap="127.0.0.1:9",
        data_dir=tmp_path / "data",
        web_port=6066,
        store="memory://",
        tokens_file=path,
        tokens_json=store.to_json(),
    )
    assert "compose" not in repr(config)

    async def check(call: Call) -> None:
        assert (await call("GET", "/twins?scope=local", from_env))[0] == 200
        assert (await call("GET", "/twins?scope=local", from_file["admin"]))[0] == 401

    _serve(create_app(config), check)
