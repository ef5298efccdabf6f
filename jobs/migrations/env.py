"""Alembic environment: the SQLModel tables are the target; the connection comes from jobs.db
(programmatic upgrade at start-up) or is opened from the settings (the `alembic` command)."""
from alembic import context
from sqlmodel import SQLModel

import jobs.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from jobs import db, settings


def run_on(connection) -> None:
    context.configure(connection=connection, target_metadata=SQLModel.metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite")  # SQLite cannot ALTER most things
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # `alembic upgrade head --sql`: print the SQL
    context.configure(url=settings.database_url(), target_metadata=SQLModel.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := context.config.attributes.get("connection")) is not None:
    run_on(connection)
else:
    with db.create(settings.database_url()).begin() as connection:
        run_on(connection)
