"""`scribe users` and `scribe clients`: clinician and administrator accounts, SMART backend clients."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from scribe.commands.base import UsageError, clients_app, err, open_configured_database, users_app
from scribe.errors import BadInputError
from scribe.text import clean_text


def _read_password_stdin() -> str:
    """The password from stdin (a pipe or a prompt-less terminal read), without its trailing newline."""
    if sys.stdin.isatty():
        err("reading the password from stdin (end with Ctrl-D)")
    password = sys.stdin.read()
    password = password[:-1] if password.endswith("\n") else password
    password = password[:-1] if password.endswith("\r") else password
    if "\n" in password:
        raise BadInputError("--password-stdin reads one password: the input has several lines")
    return password


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Username (what the clinician types to sign in).", show_default=False),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    no_password: bool = typer.Option(False, "--no-password", help="No local password: signs in through OIDC only."),
    display_name: str | None = typer.Option(None, "--display-name", help="Name shown in the app."),
    admin: bool | None = typer.Option(
        None, "--admin/--clinician", help="Role [default: clinician for a new user, unchanged with --update]"
    ),
    update: bool = typer.Option(False, "--update", help="Change an existing user instead of refusing."),
) -> None:
    """Add a user (or change one with --update); the password never appears on the command line."""
    from scribe.auth.users import save_user

    if password_stdin == no_password:
        raise UsageError("give exactly one of --password-stdin and --no-password")
    password = _read_password_stdin() if password_stdin else None
    clean_text(display_name, "--display-name")
    role = None if admin is None else ("admin" if admin else "clinician")
    account = save_user(open_configured_database(), name, password, display_name=display_name, role=role, update=update)
    err(f"user {account.username} saved ({account.role}{'' if account.has_password else ', OIDC only'})")


@users_app.command("list")
def users_list() -> None:
    """One line per user: username, role, active or disabled, how they sign in, display name."""
    from scribe.auth.users import list_users

    for account in list_users(open_configured_database()):
        state = "active" if account.active else "disabled"
        sign_in = "password" if account.has_password else "oidc"
        print(f"{account.username:<24} {account.role:<9} {state:<8} {sign_in:<8} {account.display_name or ''}".rstrip())


@users_app.command("disable")
def users_disable(name: str = typer.Argument(..., show_default=False)) -> None:
    """Disable an account at once: its sessions end and its tokens stop working."""
    _set_active("user", name, False)


@users_app.command("enable")
def users_enable(name: str = typer.Argument(..., show_default=False)) -> None:
    """Re-enable a disabled account."""
    _set_active("user", name, True)


def _set_active(kind: str, identifier: str, active: bool) -> None:
    from scribe.auth.smart import set_client_active
    from scribe.auth.users import set_user_active

    (set_user_active if kind == "user" else set_client_active)(open_configured_database(), identifier, active)
    err(f"{kind} {identifier} {'enabled' if active else 'disabled'}")


@clients_app.command("add")
def clients_add(
    name: str = typer.Argument(..., help="What the client is (e.g. the EHR's name).", show_default=False),
    jwks: Path = typer.Option(
        ..., "--jwks", help="JSON Web Key Set file with the client's public keys.", show_default=False
    ),
    scope: list[str] | None = typer.Option(
        None, "--scope", help="Scope it may be granted (repeatable) [default: system/DocumentReference.rs]"
    ),
) -> None:
    """Register a SMART Backend Services client; prints only its client_id."""
    from scribe.auth.smart import register_client

    try:
        jwks_text = jwks.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read --jwks {jwks}: {exc}") from None
    client = register_client(open_configured_database(), name, jwks_text, tuple(scope or ()))
    err(f"client {client.name!r} may be granted: {' '.join(client.scopes)}")
    print(client.client_id)


@clients_app.command("list")
def clients_list() -> None:
    """One line per client: client_id, active or disabled, allowed scopes, name."""
    from scribe.auth.smart import list_clients

    for client in list_clients(open_configured_database()):
        state = "active" if client.active else "disabled"
        print(f"{client.client_id:<32} {state:<8} {' '.join(client.scopes):<40} {client.name}")


@clients_app.command("disable")
def clients_disable(client_id: str = typer.Argument(..., show_default=False)) -> None:
    """Disable a client: no new tokens, and the ones it holds stop working."""
    _set_active("client", client_id, False)


@clients_app.command("enable")
def clients_enable(client_id: str = typer.Argument(..., show_default=False)) -> None:
    """Re-enable a disabled client."""
    _set_active("client", client_id, True)
