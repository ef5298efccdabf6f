"""ab_tests, ab_pairs: the blind A/B tests of Compare and their votes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 12:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (the models' str columns are sqlmodel's AutoString)
from alembic import op

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('ab_tests',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('model_a', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.Column('model_b', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.Column('label_a', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.Column('label_b', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.Column('run_a', sa.Integer(), nullable=True),
                    sa.Column('run_b', sa.Integer(), nullable=True),
                    sa.Column('settings', sa.JSON(), nullable=False),
                    sa.Column('prompt_set', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.Column('prompts', sa.JSON(), nullable=False),
                    sa.Column('seeds', sa.Integer(), nullable=False),
                    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
                    sa.Column('created_at', sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_ab_tests_run_a', 'ab_tests', ['run_a'])
    op.create_index('ix_ab_tests_run_b', 'ab_tests', ['run_b'])
    op.create_table('ab_pairs',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('test_id', sa.Integer(), nullable=False),
                    sa.Column('visitor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.Column('item', sa.Integer(), nullable=False),
                    sa.Column('prompt', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.Column('seed', sa.Integer(), nullable=False),
                    sa.Column('a_left', sa.Boolean(), nullable=False),
                    sa.Column('scores', sa.JSON(), nullable=True),
                    sa.Column('created_at', sa.DateTime(), nullable=False),
                    sa.Column('shown_at', sa.DateTime(), nullable=True),
                    sa.Column('choice', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
                    sa.Column('voter', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
                    sa.Column('voted_at', sa.DateTime(), nullable=True),
                    sa.ForeignKeyConstraint(['test_id'], ['ab_tests.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('test_id', 'visitor', 'item', name='uq_ab_pairs_test_visitor_item'))


def downgrade() -> None:
    op.drop_table('ab_pairs')
    op.drop_index('ix_ab_tests_run_b', table_name='ab_tests')
    op.drop_index('ix_ab_tests_run_a', table_name='ab_tests')
    op.drop_table('ab_tests')
