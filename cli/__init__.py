"""Operator commands, `flask --app app COMMAND`; the app factory registers them."""

from flask import Flask

from cli import account_commands, db_commands, delivery_commands, photo_commands, yearbook_commands


def register(app: Flask) -> None:
    for module in (db_commands, account_commands, photo_commands, delivery_commands, yearbook_commands):
        for command in module.COMMANDS:
            app.cli.add_command(command)
