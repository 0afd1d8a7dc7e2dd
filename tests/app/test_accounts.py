"""Staff accounts from the admin pages, and a login session per browser."""

import pytest

from data.states import UserRole
from tests.app.test_security import goes_to_login, logged_in_client, make_app
from tests.support.factories import login


@pytest.fixture
def web(database_url, data_dir, monkeypatch):
    yield from make_app(database_url, data_dir, monkeypatch, WTF_CSRF_ENABLED=False)


def new_account(admin, username: str, password: str = "a new password", role: str = "staff"):
    return admin.post("/admin/accounts", data={"username": username, "password": password, "role": role})


def account_id(admin, username: str) -> int:
    from sqlalchemy import select

    from data.extensions import db
    from data.models import User

    with admin.application.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))


def test_an_admin_creates_an_account_that_logs_in(web):
    """A new staff account made on the accounts page can log in with its own password; names are unique."""
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    assert new_account(admin, "mia").status_code == 303
    assert "mia" in admin.get("/admin/accounts").text
    assert login(web.test_client(), "mia", "a new password").status_code == 302
    new_account(admin, "mia", "another password")
    assert "already an account" in admin.get("/admin/accounts").text
    assert login(web.test_client(), "mia", "another password").status_code == 401


def test_short_passwords_are_refused(web):
    """The page says why and creates nothing."""
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    new_account(admin, "tom", "short")
    assert "at least 8 characters" in admin.get("/admin/accounts").text
    assert login(web.test_client(), "tom", "short").status_code == 401


def test_disabling_an_account_logs_it_out_everywhere(web):
    """A disabled account's open sessions end at once and it cannot log in again until enabled."""
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    staff = logged_in_client(web, "staff", UserRole.STAFF)
    staff_id = account_id(admin, "staff")
    assert admin.post(f"/admin/accounts/{staff_id}/active", data={"active": "0"}).status_code == 303
    assert goes_to_login(staff.get("/"))
    assert login(web.test_client()).status_code == 401
    admin.post(f"/admin/accounts/{staff_id}/active", data={"active": "1"})
    assert login(web.test_client()).status_code == 302


def test_an_admin_cannot_disable_themselves(web):
    """The last way in is not closed by a slip."""
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    admin.post(f"/admin/accounts/{account_id(admin, 'boss')}/active", data={"active": "0"})
    assert admin.get("/").status_code == 200


def test_a_reset_password_replaces_the_old_one_and_ends_sessions(web):
    """After a reset the old password and the old sessions are dead; the new password works."""
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    staff = logged_in_client(web, "staff", UserRole.STAFF)
    admin.post(f"/admin/accounts/{account_id(admin, 'staff')}/password", data={"password": "fresh password"})
    assert goes_to_login(staff.get("/"))
    assert login(web.test_client()).status_code == 401
    assert login(web.test_client(), password="fresh password").status_code == 302


def test_log_out_ends_this_browser_only_and_everywhere_ends_all(web):
    """Two laptops on one account: "log out" on one leaves the other in; "log out everywhere" ends both."""
    laptops = [logged_in_client(web, "staff", UserRole.STAFF)]
    laptops += [web.test_client() for _ in range(2)]
    for laptop in laptops[1:]:
        assert login(laptop).status_code == 302
    assert laptops[0].post("/logout").status_code == 302
    assert goes_to_login(laptops[0].get("/"))
    assert laptops[1].get("/").status_code == 200 and laptops[2].get("/").status_code == 200
    assert laptops[1].post("/logout/everywhere").status_code == 302
    assert goes_to_login(laptops[1].get("/")) and goes_to_login(laptops[2].get("/"))


def test_the_session_table_holds_no_usable_token(web):
    """A copy of the database gives no login: the session rows hold hashes, not the cookie's tokens."""
    from sqlalchemy import select

    from data.extensions import db
    from data.models import LoginSession

    client = logged_in_client(web, "staff", UserRole.STAFF)
    with client.session_transaction() as cookie:
        token = cookie["_user_id"].split(":", 1)[1]
    with web.app_context():
        stored = db.session.scalars(select(LoginSession.token_hash)).all()
    assert len(stored) == 1 and token not in stored[0]


def test_every_account_change_is_audited_under_the_acting_admin(web):
    """Create, disable, enable, reset and unlock each leave an audit row by the admin, without the password hash."""
    from sqlalchemy import select

    from data.extensions import db
    from data.models import AuditLog

    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    new_account(admin, "mia")
    mia = account_id(admin, "mia")
    boss = account_id(admin, "boss")
    admin.post(f"/admin/accounts/{mia}/active", data={"active": "0"})
    admin.post(f"/admin/accounts/{mia}/active", data={"active": "1"})
    admin.post(f"/admin/accounts/{mia}/password", data={"password": "yet another one"})
    admin.post(f"/admin/accounts/{mia}/unlock")
    with web.app_context():
        rows = db.session.scalars(select(AuditLog).where(AuditLog.entity == "user").order_by(AuditLog.id)).all()
        assert [row.action for row in rows] == [
            "account.created",
            "account.disabled",
            "account.enabled",
            "account.password_reset",
            "account.unlocked",
        ]
        assert {(row.user_id, row.entity_id) for row in rows} == {(boss, mia)}
        assert rows[1].before["active"] and not rows[1].after["active"]
        assert not any("hash" in str(row.before) + str(row.after) for row in rows)
