"""runs: the user's notes and tags

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 17:10:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# Plain ALTER TABLE ADD/DROP COLUMN (SQLite has both since 3.35), never batch mode's copy of the
# table: dropping the old `runs` would cascade to every metrics, sample and checkpoint row.


def upgrade() -> None:
    op.add_column('runs', sa.Column('notes', sa.Text(), nullable=False, server_default=''))  # existing runs: none
    op.add_column('runs', sa.Column('tags', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    for column in ('tags', 'notes'):
        op.execute(f'ALTER TABLE runs DROP COLUMN {column}')
