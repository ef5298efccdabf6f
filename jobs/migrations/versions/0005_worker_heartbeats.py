"""workers: each worker's heartbeat, so the app can tell whether any worker is alive (and has a GPU);
runs: the time forecast made when the run was submitted, to set beside the time it took

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 01:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('workers',
                    sa.Column('id', sa.String(), primary_key=True),
                    sa.Column('slots', sa.Integer(), nullable=False),
                    sa.Column('device', sa.String(), nullable=False, server_default='cpu'),
                    sa.Column('gpu_memory', sa.BigInteger(), nullable=True),
                    sa.Column('started_at', sa.DateTime(), nullable=False),
                    sa.Column('seen_at', sa.DateTime(), nullable=False))
    op.create_index('ix_workers_seen_at', 'workers', ['seen_at'])
    op.add_column('runs', sa.Column('estimate', sa.JSON(), nullable=True))  # plain ADD COLUMN, as 0004 says why


def downgrade() -> None:
    op.execute('ALTER TABLE runs DROP COLUMN estimate')
    op.drop_index('ix_workers_seen_at', table_name='workers')
    op.drop_table('workers')
