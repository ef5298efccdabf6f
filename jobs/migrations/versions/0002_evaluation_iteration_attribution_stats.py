"""evaluations made during training (iteration, trained); attribution reward_std and agreement

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 10:20:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('iteration', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('trained', sa.Integer(), nullable=True))
        batch_op.create_index('ix_evaluations_run_iteration', ['run_id', 'iteration'], unique=False)
    with op.batch_alter_table('attributions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reward_std', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('agreement', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attributions', schema=None) as batch_op:
        batch_op.drop_column('agreement')
        batch_op.drop_column('reward_std')
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index('ix_evaluations_run_iteration')
        batch_op.drop_column('trained')
        batch_op.drop_column('iteration')
