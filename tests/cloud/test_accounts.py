"""Staff accounts on SQLite and PostgreSQL: argon2 hashes, hashed session tokens with expiry, roles,
the database-backed login rate limiter (shared by processes), and user deletion."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cloud.accounts import (
    AccountError,
    Accounts,
    BadCredentials,
    LoginRateLimiter,
    PasswordHasher,
    RateLimited,
    UserExists,
    hash_token,
)
from cloud.store import Store
from cloud.store.schema import SessionRow, User

S = 1_000_000
HASHER = PasswordHasher(time_cost=1, memory_kib=8)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def accounts_for(store: Store, **kw) -> Accounts:
    limiter = LoginRateLimiter(store, max_failures=kw.pop("max_failures", 3), window_s=kw.pop("window_s", 60))
    return Accounts(store, hasher=HASHER, limiter=limiter, session_ttl_s=kw.pop("ttl_s", 3600))


def test_password_hashes_are_argon2id_salted_and_verify() -> None:
    h1, h2 = HASHER.hash("correct horse"), HASHER.hash("correct horse")
    assert h1.startswith("$argon2id$") and h1 != h2  # salted
    assert HASHER.verify(h1, "correct horse") and not HASHER.verify(h1, "Correct horse")
    assert not HASHER.verify("not a hash", "correct horse")  # a corrupt hash is a mismatch, not a crash
    assert PasswordHasher(time_cost=2, memory_kib=8).needs_rehash(h1)


async def test_users_are_stored_with_hashes_and_roles(store: Store) -> None:
    accounts = accounts_for(store)
    user = await accounts.create_user("dr.osei", "correct horse", "clinician")
    assert (user.username, user.role, user.active) == ("dr.osei", "clinician", True)
    async with store.session() as s:
        stored = (await s.scalars(select(User))).one()
    assert "correct horse" not in stored.password_hash and HASHER.verify(stored.password_hash, "correct horse")
    with pytest.raises(UserExists):
        await accounts.create_user("dr.osei", "another one", "admin")
    for name, password, role in (("bad name", "long enough", "clinician"), ("ok", "short", "clinician"),
                                 ("ok", "long enough", "superuser"), ("ok", " " * 10, "admin")):
        with pytest.raises(AccountError):
            await accounts.create_user(name, password, role)
    assert [u.username for u in await store.list_users()] == ["dr.osei"]


async def test_sessions_store_only_the_token_hash_and_expire(store: Store) -> None:
    clock = Clock(store.clock())
    store.clock = clock
    accounts = accounts_for(store, ttl_s=60)
    await accounts.create_user("dr.osei", "correct horse", "clinician")
    result = await accounts.login("dr.osei", "correct horse", client="10.0.0.7")
    async with store.session() as s:
        row = (await s.scalars(select(SessionRow))).one()
    assert row.token_hash == hash_token(result.token) and result.token not in row.token_hash
    user = await accounts.authenticate(result.token)
    assert user is not None and user.username == "dr.osei"
    assert await accounts.authenticate(result.token + "x") is None
    clock.now += 60 * S
    assert await accounts.authenticate(result.token) is None  # expired
    assert await store.purge_expired() == 1


async def test_logout_and_user_deletion_end_sessions_and_assignments(store: Store) -> None:
    accounts = accounts_for(store)
    await accounts.create_user("dr.osei", "correct horse", "clinician")
    await store.add_patient("pat-1")
    await store.assign_patient("pat-1", "dr.osei", by="admin")
    a = await accounts.login("dr.osei", "correct horse")
    b = await accounts.login("dr.osei", "correct horse")
    assert await accounts.logout(a.token) and await accounts.authenticate(a.token) is None
    assert await accounts.authenticate(b.token) is not None
    assert await accounts.delete_user("dr.osei")
    assert await accounts.authenticate(b.token) is None
    patient = await store.get_patient("pat-1")
    assert patient is not None and patient.assigned_to is None
    assert not await accounts.delete_user("dr.osei")


async def test_bad_credentials_and_rate_limit_shared_by_two_processes(migrated_url: str) -> None:
    async with Store(migrated_url) as one, Store(migrated_url) as two:
        clock = Clock(one.clock())
        one.clock = two.clock = clock
        a, b = accounts_for(one, max_failures=3, window_s=60), accounts_for(two, max_failures=3, window_s=60)
        await a.create_user("dr.osei", "correct horse", "clinician")
        with pytest.raises(BadCredentials):
            await a.login("nobody", "correct horse", client="c1")
        for accounts in (a, b, a):  # the processes count the same failures
            with pytest.raises(BadCredentials):
                await accounts.login("dr.osei", "wrong horse", client="c1")
        with pytest.raises(RateLimited) as limited:  # refused even with the password, from that address
            await b.login("dr.osei", "correct horse", client="c1")
        assert limited.value.retry_after_s == 1.0  # the first growing delay
        # the real user at another address is not held up by them
        assert (await b.login("dr.osei", "correct horse", client="c4")).user.username == "dr.osei"
        clock.now += 1 * S
        with pytest.raises(BadCredentials):
            await b.login("dr.osei", "wrong horse", client="c1")
        with pytest.raises(RateLimited) as limited:
            await a.login("dr.osei", "wrong horse", client="c1")
        assert limited.value.retry_after_s == 2.0
        clock.now += 61 * S  # everything ages out of the window
        assert (await a.login("dr.osei", "correct horse", client="c1")).user.username == "dr.osei"
        # per client address: one address trying several names is slowed after twice the free failures
        for i in range(6):
            with pytest.raises(BadCredentials):
                await (a, b)[i % 2].login(f"u{i}", "whatever-1", client="c9")
        with pytest.raises(RateLimited):
            await b.login("dr.osei", "correct horse", client="c9")
        assert (await b.login("dr.osei", "correct horse", client="c5")).user.username == "dr.osei"


async def test_growing_delays_unlock_and_the_account_wide_bound(store: Store) -> None:
    clock = Clock(store.clock())
    store.clock = clock
    accounts = Accounts(store, hasher=HASHER, limiter=LoginRateLimiter(
        store, max_failures=2, window_s=3600, max_delay_s=30, account_max_delay_s=5))
    await accounts.create_user("admin", "correct horse", "admin")
    waits: list[float] = []
    while len(waits) < 7:  # one address guessing, waiting out each delay
        try:
            await accounts.login("admin", "guess", client="10.6.6.6")
        except RateLimited as exc:
            waits.append(exc.retry_after_s)
            clock.now += int(exc.retry_after_s * S)
        except BadCredentials:
            pass
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # growing, capped
    # the owner elsewhere waits at most the account-wide bound, however many failures there are
    try:
        await accounts.login("admin", "correct horse", client="10.0.0.7")
    except RateLimited as exc:
        assert exc.retry_after_s <= 5
        clock.now += int(exc.retry_after_s * S)
    assert (await accounts.login("admin", "correct horse", client="10.0.0.7")).user.username == "admin"
    with pytest.raises(BadCredentials):  # the attacker's delay had run out: one more failure
        await accounts.login("admin", "guess", client="10.6.6.6")
    with pytest.raises(RateLimited):  # and that address waits again, even with the right password
        await accounts.login("admin", "correct horse", client="10.6.6.6")
    assert await accounts.unlock("admin") >= 8
    assert (await accounts.login("admin", "correct horse", client="10.6.6.6")).user.username == "admin"
