"""``python -m werkplaats``: the CLI."""

from .cli.app import main

main()
