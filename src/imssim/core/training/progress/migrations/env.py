"""Alembic environment: run by imssim.core.training.progress.store on open (never from a shell);
the connection comes in ``config.attributes['connection']``."""

from alembic import context

from imssim.core.training.progress.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
