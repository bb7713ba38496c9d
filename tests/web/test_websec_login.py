"""Login throttling without lock-out (issue 19, item 7; OWASP ASVS 2.2.1).

An attacker hammering one account from one address slows only that (account, address) pair, with
waits that double; the account's owner from another address still logs in. Spraying many accounts
from one address is throttled per address. The clock is a fake one, so growing waits of minutes are
checked in milliseconds."""

from __future__ import annotations

import types
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from radpath.web import auth
from tests.web.conftest import PASSWORD, csrf_of

ATTACKER, OWNER = "203.0.113.9", "198.51.100.7"


@pytest.fixture
def clock(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(auth, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


def _fails(engine, settings, user, client, n=1):
    for _ in range(n):
        with pytest.raises(auth.AuthError) as err:
            auth.authenticate(engine, settings, user, "not the password", client)
        assert not isinstance(err.value, auth.ThrottledError), str(err.value)


def _throttled(engine, settings, user, client, password="not the password") -> int:
    with pytest.raises(auth.ThrottledError) as err:
        auth.authenticate(engine, settings, user, password, client)
    return err.value.retry_after


def test_hammering_an_account_never_locks_out_its_owner_elsewhere(settings, users, clock):
    _fails(users, settings, "alice", ATTACKER, settings.login_max_failures)
    waits = []
    for _ in range(12):  # each further try waits twice as long as the one before, up to the cap
        waits.append(_throttled(users, settings, "alice", ATTACKER, password=PASSWORD))
        clock[0] += waits[-1]
        _fails(users, settings, "alice", ATTACKER)
    first = int(settings.login_delay_seconds)
    assert waits[:5] == [first, 2 * first, 4 * first, 8 * first, 16 * first]
    assert max(waits) == waits[-1] == settings.login_max_delay_seconds
    assert sum(waits) > 3600 and len(waits) + settings.login_max_failures < 20  # < 20 guesses in the first hour
    # meanwhile the owner, from another address, logs in at once, with no wait
    assert auth.authenticate(users, settings, "alice", PASSWORD, OWNER).username == "alice"
    assert auth.authenticate(users, settings, "bob", PASSWORD, ATTACKER).username == "bob"  # other accounts too
    # the owner mistyping once is not punished for the attacker's failures
    _fails(users, settings, "alice", OWNER)
    assert auth.authenticate(users, settings, "alice", PASSWORD, OWNER).username == "alice"


def test_spraying_many_accounts_from_one_address_is_throttled(settings, users, clock):
    settings = replace(settings, login_client_max_failures=8)
    for i in range(8):  # a different account each time: no pair reaches its limit
        _fails(users, settings, f"user{i}", ATTACKER)
    retry = _throttled(users, settings, "user99", ATTACKER)
    assert retry == settings.login_delay_seconds
    wait = _throttled(users, settings, "bob", ATTACKER, password=PASSWORD)  # even a right password waits
    assert wait > 0
    with pytest.raises(auth.ThrottledError, match="from your address"):
        auth.authenticate(users, settings, "bob", PASSWORD, ATTACKER)
    assert auth.authenticate(users, settings, "bob", PASSWORD, OWNER).username == "bob"
    clock[0] += wait
    assert auth.authenticate(users, settings, "bob", PASSWORD, ATTACKER).username == "bob"  # a wait, not a ban


def test_many_addresses_on_one_account_hit_the_account_limit_but_not_its_owners_browser(settings, users, clock):
    """A botnet, or forged X-Forwarded-For addresses: each address fails once, so no pair limit is
    reached; past the account-wide limit every client waits except a browser that logged in to the
    account before (its device cookie)."""
    owners_cookie = auth.remember_device(settings.secret, "alice", None)
    settings = replace(settings, login_account_max_failures=6)
    for i in range(6):
        _fails(users, settings, "alice", f"192.0.2.{i}")
    assert _throttled(users, settings, "alice", "192.0.2.77", password=PASSWORD) > 0  # a new address waits too
    forged = auth.remember_device("another site's secret", "alice", None)
    with pytest.raises(auth.ThrottledError, match="for this account"):
        auth.authenticate(users, settings, "alice", PASSWORD, "192.0.2.78", forged)
    assert auth.authenticate(users, settings, "alice", PASSWORD, OWNER, owners_cookie).username == "alice"
    assert auth.authenticate(users, settings, "bob", PASSWORD, "192.0.2.79").username == "bob"  # other accounts


def test_counts_are_forgotten_after_the_window_and_at_login(settings, users, clock):
    _fails(users, settings, "alice", ATTACKER, settings.login_max_failures)
    assert _throttled(users, settings, "alice", ATTACKER) > 0
    clock[0] += settings.login_window_seconds + 1
    _fails(users, settings, "alice", ATTACKER, settings.login_max_failures - 1)  # counting from zero again
    assert auth.authenticate(users, settings, "alice", PASSWORD, ATTACKER).username == "alice"
    _fails(users, settings, "alice", ATTACKER, settings.login_max_failures)  # a login cleared the pair


def _login(c: TestClient, user: str, password: str):
    token = csrf_of(c.get("/login").text)
    return c.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": token},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )


def test_over_http_the_attacker_gets_429_and_the_owner_logs_in(settings, users):
    from radpath.web.app import create_app

    app = create_app(settings)
    with TestClient(app, client=(ATTACKER, 4444)) as attacker, TestClient(app, client=(OWNER, 5555)) as owner:
        for _ in range(settings.login_max_failures):
            assert _login(attacker, "alice", "not the password").status_code == 401
        r = _login(attacker, "alice", PASSWORD)
        assert r.status_code == 429 and int(r.headers["retry-after"]) == settings.login_delay_seconds
        assert "too many failed logins for this account from your address" in r.text
        assert _login(owner, "alice", PASSWORD).status_code == 303
        api = attacker.post("/api/token", json={"username": "alice", "password": PASSWORD})
        assert api.status_code == 429 and api.headers["retry-after"]
        assert owner.post("/api/token", json={"username": "alice", "password": PASSWORD}).status_code == 200


def test_over_http_a_browser_that_logged_in_before_gets_in_during_a_distributed_attack(settings, users):
    from radpath.web.app import create_app
    from radpath.web.login import DEVICE_COOKIE

    settings = replace(settings, login_account_max_failures=4)
    app = create_app(settings)
    with TestClient(app, client=(OWNER, 5555)) as owner:
        first = _login(owner, "alice", PASSWORD)
        assert first.status_code == 303 and DEVICE_COOKIE in first.cookies
        assert "httponly" in first.headers["set-cookie"].lower()
        for i in range(4):  # four addresses (or one forging X-Forwarded-For), one failure each
            with TestClient(app, client=(f"192.0.2.{i}", 4000 + i)) as bot:
                assert _login(bot, "alice", "not the password").status_code == 401
        with TestClient(app, client=("192.0.2.99", 4999)) as fresh:
            assert _login(fresh, "alice", PASSWORD).status_code == 429  # no device cookie: waits
        assert _login(owner, "alice", PASSWORD).status_code == 303  # the owner's browser does not


def test_a_burst_of_logins_checks_at_most_four_passwords_at_once(settings, users, monkeypatch):
    """Each argon2id check holds 64 MiB: 16 logins at once must not mean 1 GB in the site."""
    import threading

    running, peak, lock = [0], [0], threading.Lock()
    real = auth.HASHER

    class Counting:
        def verify(self, stored, password):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                return real.verify(stored, password)
            finally:
                with lock:
                    running[0] -= 1

        def check_needs_rehash(self, stored):
            return real.check_needs_rehash(stored)

    monkeypatch.setattr(auth, "HASHER", Counting())
    threads = [
        threading.Thread(target=auth.authenticate, args=(users, settings, "alice", PASSWORD, f"10.0.0.{i}"))
        for i in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert peak[0] == 4, peak[0]
