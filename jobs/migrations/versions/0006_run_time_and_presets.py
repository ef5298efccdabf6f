"""runs: the latest start and the seconds spent over all starts; presets: the users' saved Launch forms

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# Plain ALTER TABLE ADD/DROP COLUMN, never batch mode's copy of `runs` (its drop would cascade).


def upgrade() -> None:
    op.add_column('runs', sa.Column('resumed_at', sa.DateTime(), nullable=True))
    op.add_column('runs', sa.Column('active_seconds', sa.Float(), nullable=False, server_default='0'))
    # Existing runs: their one recorded span (a resume overwrote the earlier ones) is their time so far.
    # Worked out here in Python: SQLite and PostgreSQL subtract timestamps differently.
    runs = sa.table('runs', sa.column('id', sa.Integer()), sa.column('started_at', sa.DateTime()),
                    sa.column('finished_at', sa.DateTime()), sa.column('resumed_at', sa.DateTime()),
                    sa.column('active_seconds', sa.Float()))
    connection = op.get_bind()
    for run_id, started, finished in connection.execute(sa.select(runs.c.id, runs.c.started_at, runs.c.finished_at)
                                                        .where(runs.c.started_at.is_not(None))).all():
        seconds = max((finished - started).total_seconds(), 0.0) if finished is not None and finished >= started else 0.0
        connection.execute(sa.update(runs).where(runs.c.id == run_id).values(resumed_at=started, active_seconds=seconds))
    op.create_table('presets',
                    sa.Column('name', sa.String(), primary_key=True),
                    sa.Column('config', sa.JSON(), nullable=False),
                    sa.Column('saved_at', sa.DateTime(), nullable=False))


def downgrade() -> None:
    op.drop_table('presets')
    for column in ('active_seconds', 'resumed_at'):
        op.execute(f'ALTER TABLE runs DROP COLUMN {column}')
