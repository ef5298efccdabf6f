"""compact member arrays (one float32 row per iteration), curve values and buckets

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 16:00:00

G²RPO's attributions were one row per (iteration, prompt, branch step) with the members' rewards
and advantages as JSON (about 20 KB per iteration of a default run); they become one row per
iteration holding one float32 blob (jobs/attribution.py). Each metrics row gets its curve values and every
run its curve buckets (jobs/rollup.py), so the Monitor's curves and step x iteration view read a
bounded number of rows; a metrics row's JSON record no longer repeats what its columns hold. Existing runs are converted iteration by iteration, in chunks, through
the same functions that store new records: a converted run reads back as if it had been stored
now. The downgrade writes the old rows again from the new ones.

This migration calls today's encoders (jobs.sink.rows_for, jobs.rollup): a later change of those
formats must come with its own migration, applied after this one.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CHUNK = 1000  # iterations converted at a time


def _runs(bind):
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("config", sa.JSON))
    return bind.execute(sa.select(runs.c.id, runs.c.config).order_by(runs.c.id)).all()


def _iterations(bind, run_id: int) -> range:
    metrics = sa.table("metrics", sa.column("run_id", sa.Integer), sa.column("iteration", sa.Integer))
    low, high = bind.execute(sa.select(sa.func.min(metrics.c.iteration), sa.func.max(metrics.c.iteration))
                             .where(metrics.c.run_id == run_id)).one()
    return range(0) if low is None else range(low, high + 1, CHUNK)


def _rename_table(old: str, new: str) -> None:
    op.rename_table(old, new)
    if op.get_bind().dialect.name == "postgresql":  # constraints keep their names: give them the table's
        op.execute(f"ALTER INDEX {old}_pkey RENAME TO {new}_pkey")
        op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT {old}_run_id_fkey TO {new}_run_id_fkey")


def upgrade() -> None:
    from jobs import legacy, rollup
    from jobs.models import Attribution, Metric
    from jobs.sink import rows_for

    op.create_table('curve_buckets',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.Column('iterations', sa.Integer(), nullable=False),
    sa.Column('stats', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'level', 'start')
    )
    op.create_table('curve_layouts',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('names', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id')
    )
    op.create_table('attributions_new',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('iteration', sa.Integer(), nullable=False),
    sa.Column('models', sa.Integer(), nullable=False),
    sa.Column('prompts', sa.Integer(), nullable=False),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.Column('granularities', sa.Integer(), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.Column('arrays', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name='attributions_new_run_id_fkey', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'iteration', name='attributions_new_pkey')
    )
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('curve_values', sa.LargeBinary(), nullable=True))

    bind = op.get_bind()
    new = Attribution.__table__.to_metadata(sa.MetaData(), name="attributions_new")
    set_values = sa.text("UPDATE metrics SET curve_values = :v, record = :record WHERE run_id = :r AND iteration = :i"
                         ).bindparams(sa.bindparam("record", type_=sa.JSON))
    for run_id, config in _runs(bind):
        for first in _iterations(bind, run_id):
            records = legacy.old_records(bind, run_id, first, first + CHUNK - 1)
            if not records:
                continue
            staged = [rows_for(run_id, record, config) for record in records]
            arrays = [row for rows, _ in staged for row in rows[Attribution]]
            if arrays:
                bind.execute(sa.insert(new), arrays)
            curves = [values for _, values in staged]
            matrix = rollup.encode(rollup.layout(bind, run_id, curves), curves)
            its = [record["iteration"] for record in records]
            bind.execute(set_values, [{"v": vector.tobytes(), "record": rows[Metric][0]["record"], "r": run_id, "i": it}
                                      for it, vector, (rows, _) in zip(its, matrix, staged)])
            rollup.fold(bind, run_id, its, matrix)

    op.drop_table('attributions')  # its index goes with it
    _rename_table('attributions_new', 'attributions')
    if bind.dialect.name == "postgresql":  # 2.7 KB of float32 noise: out of line (TOAST) at once, no compression tried
        op.execute("ALTER TABLE attributions ALTER COLUMN arrays SET STORAGE EXTERNAL")


def downgrade() -> None:
    from jobs import attribution, legacy
    from jobs.queries import full_record
    from jobs.sink import SCALARS

    op.create_table('attributions_old',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('iteration', sa.Integer(), nullable=False),
    sa.Column('prompt', sa.Integer(), nullable=False),
    sa.Column('k', sa.Integer(), nullable=False),
    sa.Column('rewards', sa.JSON(), nullable=False),
    sa.Column('advantages', sa.JSON(), nullable=False),
    sa.Column('mixed_advantage', sa.JSON(), nullable=False),
    sa.Column('abs_advantage', sa.Float(), nullable=True),
    sa.Column('reward_std', sa.Float(), nullable=True),
    sa.Column('agreement', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name='attributions_old_run_id_fkey', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'iteration', 'prompt', 'k', name='attributions_old_pkey')
    )
    op.create_index('ix_attributions_history', 'attributions_old', ['run_id', 'iteration', 'k', 'abs_advantage'])

    bind = op.get_bind()
    old = legacy.attributions.to_metadata(sa.MetaData(), name="attributions_old")
    blobs = sa.table("attributions", *(sa.column(c) for c in ("run_id", "iteration", *attribution.SHAPE, "arrays")))
    metrics = sa.table("metrics", *(sa.column(c) for c in ("run_id", "iteration", *SCALARS)),
                       sa.column("rewards", sa.JSON), sa.column("record", sa.JSON))
    set_record = sa.text("UPDATE metrics SET record = :record WHERE run_id = :r AND iteration = :i"
                         ).bindparams(sa.bindparam("record", type_=sa.JSON))
    for run_id, config in _runs(bind):
        for first in _iterations(bind, run_id):
            span = (first, first + CHUNK - 1)
            rows = bind.execute(sa.select(metrics).where(metrics.c.run_id == run_id,
                                                         metrics.c.iteration.between(*span))).all()
            arrays = {a.iteration: dict(a._mapping) for a in bind.execute(sa.select(blobs).where(
                blobs.c.run_id == run_id, blobs.c.iteration.between(*span)))}
            cells, records = [], []
            for row in rows:
                old_rows = legacy.rows_for(run_id, full_record(dict(row._mapping), arrays.get(row.iteration)), config)
                cells += old_rows[legacy.attributions]
                records.append({"record": old_rows[legacy.metrics][0]["record"], "r": run_id, "i": row.iteration})
            if cells:
                bind.execute(sa.insert(old), cells)
            if records:
                bind.execute(set_record, records)

    op.drop_table('attributions')
    _rename_table('attributions_old', 'attributions')
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_column('curve_values')
    op.drop_table('curve_layouts')
    op.drop_table('curve_buckets')
