import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from scribe.auth.tickets import issue_ticket, redeem_ticket
from scribe.auth.tokens import AuthError
from scribe.config import Settings
from scribe.store.db import open_database
from scribe.store.models import StreamTicket


@pytest.fixture
def database(tmp_path):
    return open_database(Settings(data_dir=tmp_path))


def test_ticket_works_once(database):
    ticket = issue_ticket(database, "dr-a", "enc-1")
    assert redeem_ticket(database, ticket, "enc-1") == "dr-a"
    with pytest.raises(AuthError, match="already used"):
        redeem_ticket(database, ticket, "enc-1")


def test_ticket_is_bound_to_its_encounter(database):
    ticket = issue_ticket(database, "dr-a", "enc-1")
    with pytest.raises(AuthError, match="another encounter"):
        redeem_ticket(database, ticket, "enc-2")
    with pytest.raises(AuthError):  # and it is spent
        redeem_ticket(database, ticket, "enc-1")


def test_expired_and_unknown_tickets(database):
    ticket = issue_ticket(database, "dr-a", "enc-1")
    with database.session() as session:
        session.execute(update(StreamTicket).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    with pytest.raises(AuthError, match="expired"):
        redeem_ticket(database, ticket, "enc-1")
    with pytest.raises(AuthError):
        redeem_ticket(database, "made-up", "enc-1")


def test_concurrent_redemption_succeeds_once(database):
    ticket = issue_ticket(database, "dr-a", "enc-1")
    results: list[str] = []

    def attempt() -> None:
        try:
            results.append(redeem_ticket(database, ticket, "enc-1"))
        except AuthError:
            results.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["dr-a"] + ["refused"] * 5
