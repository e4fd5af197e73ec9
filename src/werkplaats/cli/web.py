"""`werkplaats hub web-user` and `werkplaats datastation web-user`: the web application's accounts.

A hub web account belongs to an existing hub user (``werkplaats hub`` API users: role and
organisation come from there); a datastation's accounts are its stewards', kept in the
datastation's own store. The TOTP secret is printed once: whoever holds it can make the codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import WerkplaatsError
from .common import fail

hub_app = typer.Typer(help="The hub's web accounts (for existing hub users).", no_args_is_help=True)
station_app = typer.Typer(help="This datastation's stewards' web accounts.", no_args_is_help=True)

PasswordFile = Annotated[
    Path | None, typer.Option(help="Read the password from this file's first line (else it is asked for).")
]


def _password(password_file: Path | None) -> str:
    """The new account's password: from a file's first line, or asked twice without echo."""
    if password_file is not None:
        lines = password_file.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _print_secret(name: str, secret: str) -> None:
    from ..web.accounts import totp_uri

    typer.echo(f"TOTP secret (shown once; give it to {name} to add to an authenticator app): {secret}")
    typer.echo(f"otpauth URI: {totp_uri(secret, name)}")


@hub_app.command("add")
def hub_web_user_add(
    name: Annotated[str, typer.Argument(help="An existing hub user's name.")],
    config: Annotated[Path, typer.Option(help="hub.toml")],
    password_file: PasswordFile = None,
) -> None:
    """Create the web account of an existing hub user; prints the TOTP secret once when the role needs one."""
    from sqlalchemy import select

    from ..workspace import db

    try:
        accounts = _hub_accounts(config)
        password = _password(password_file)
        with accounts.hub.sessions() as s:
            user = s.scalars(select(db.User).where(db.User.name == name)).first()
            if user is None:
                fail(WerkplaatsError(f"no hub user named {name!r}; create the user first (POST /users)"))
            secret = accounts.create_account(s, user, password)
    except (WerkplaatsError, OSError) as e:
        fail(e)
    typer.echo(f"web account for {name} created")
    if secret:
        _print_secret(name, secret)
    else:
        typer.echo("no second factor required for this role; the user can enrol one on the account page")


@station_app.command("add")
def station_web_user_add(
    name: Annotated[str, typer.Argument(help="The steward's login name.")],
    config: Annotated[Path, typer.Option(help="datastation.toml")],
    password_file: PasswordFile = None,
) -> None:
    """Create a steward's web account at this datastation; prints the TOTP secret once."""
    try:
        accounts = _station_accounts(config)
        secret = accounts.create_account(name, _password(password_file))
    except (WerkplaatsError, OSError) as e:
        fail(e)
    st = accounts.station
    typer.echo(f"steward web account {name} created at {st.cfg.name} ({st.cfg.organisation})")
    _print_secret(name, secret)


def _hub_accounts(config: Path) -> Any:
    from ..web.accounts import HubAccounts
    from ..workspace.config import WebConfig
    from .hub import _hub

    cfg, hub = _hub(config)
    return HubAccounts(hub, cfg.web or WebConfig("127.0.0.1", 0, ""))


def _station_accounts(config: Path) -> Any:
    from ..web.accounts import StationAccounts
    from ..workspace.config import WebConfig
    from .datastation import _station

    st = _station(config)
    return StationAccounts(st, st.cfg.web or WebConfig("127.0.0.1", 0, ""))


Name = Annotated[str, typer.Argument(help="The account's login name.")]


@hub_app.command("unlock")
def hub_web_user_unlock(name: Name, config: Annotated[Path, typer.Option(help="hub.toml")]) -> None:
    """Lift the lockout of a web account after too many failed logins."""
    try:
        _hub_accounts(config).unlock(name)
    except (WerkplaatsError, OSError) as e:
        fail(e)
    typer.echo(f"web account {name} unlocked")


@hub_app.command("reset-totp")
def hub_web_user_reset_totp(name: Name, config: Annotated[Path, typer.Option(help="hub.toml")]) -> None:
    """Forget a web account's TOTP secret (a lost phone) and log it out; it enrols a new one at its next login."""
    try:
        _hub_accounts(config).reset_totp(name)
    except (WerkplaatsError, OSError) as e:
        fail(e)
    typer.echo(f"second factor of {name} reset: it enrols a new one at its next login")


@station_app.command("unlock")
def station_web_user_unlock(name: Name, config: Annotated[Path, typer.Option(help="datastation.toml")]) -> None:
    """Lift the lockout of a steward's web account after too many failed logins."""
    try:
        _station_accounts(config).unlock(name)
    except (WerkplaatsError, OSError) as e:
        fail(e)
    typer.echo(f"steward web account {name} unlocked")


@station_app.command("reset-totp")
def station_web_user_reset_totp(name: Name, config: Annotated[Path, typer.Option(help="datastation.toml")]) -> None:
    """Forget a steward's TOTP secret (a lost phone) and log them out; they enrol a new one at their next login."""
    try:
        _station_accounts(config).reset_totp(name)
    except (WerkplaatsError, OSError) as e:
        fail(e)
    typer.echo(f"second factor of {name} reset: they enrol a new one at their next login")
