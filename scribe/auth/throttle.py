"""Throttling of password and client-assertion guessing, counted from the audit trail every node shares.

Each failed sign-in or token request is an `auth-failure` record naming the account (when it exists), the
route and the client address, so the limits below hold across nodes and restarts. Within WINDOW_S:

- one address: ADDRESS_LIMIT failures over every account, then each attempt from it is refused, even with a
  right password (password spraying over many usernames);
- one account from one address: ACCOUNT_LIMIT failures, then that address may no longer try that account;
- one account from everywhere: ACCOUNT_CEILING failures, then nobody may. An address adds at most ACCOUNT_LIMIT
  failures to an account, so locking a clinician out takes ACCOUNT_CEILING // ACCOUNT_LIMIT addresses, not one.

A refused attempt is audited (status 429) but not counted: a throttle ends WINDOW_S after the failures behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scribe.audit import recent_failures
from scribe.store import Database

WINDOW_S = 15 * 60.0
ADDRESS_LIMIT = 30
ACCOUNT_LIMIT = 10
ACCOUNT_CEILING = 100


@dataclass(frozen=True)
class Throttled:
    """Why an attempt is refused, and the account it is about (None when the address alone is throttled)."""

    reason: str
    account: str | None


def attempt_refusal(
    database: Database, routes: Sequence[str], address: str | None, account: str | None = None
) -> Throttled | None:
    """Whether a credential attempt on `routes` from `address` (for `account`, when it names one) is refused now."""

    def failures(**who: str) -> int:
        return recent_failures(database, WINDOW_S, routes, **who)

    later = f"try again in {WINDOW_S / 60:.0f} minutes"
    if address is not None:
        if failures(source_ip=address) >= ADDRESS_LIMIT:
            return Throttled(f"too many failed attempts from this address; {later}", None)
        if account and failures(actor=account, source_ip=address) >= ACCOUNT_LIMIT:
            return Throttled(f"too many failed sign-ins for this account from this address; {later}", account)
    if account and failures(actor=account) >= ACCOUNT_CEILING:
        return Throttled(f"too many failed sign-ins for this account; {later}", account)
    return None
