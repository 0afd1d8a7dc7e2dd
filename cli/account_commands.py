"""Staff accounts from the command line."""

import secrets
import sys

import click

from data.database import db_commit_with_retry
from data.states import UserRole
from services.accounts import create_user, has_admin


@click.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in UserRole]), default=UserRole.STAFF.value)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(name: str, role: str, password_stdin: bool) -> None:
    """Create a staff or admin account (or reset its password and role)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        db_commit_with_retry(create_user, name, password, UserRole(role))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"user {name} ({role}) saved")


@click.command("ensure-admin")
def ensure_admin() -> None:
    """On first start, create user 'admin' with a random password and print it once."""
    if has_admin():
        return
    password = secrets.token_urlsafe(12)
    db_commit_with_retry(create_user, "admin", password, UserRole.ADMIN)
    click.echo(
        f"Created user 'admin' with password: {password}\n"
        "Change it with: .venv/bin/flask --app app create-user admin --role admin"
    )


COMMANDS = (create_user_command, ensure_admin)
