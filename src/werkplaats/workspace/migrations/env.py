"""Alembic environment: runs on the connection the hub passes in (see db.migrate)."""

from alembic import context

from werkplaats.workspace.db import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite:///hub.db").connect()
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
