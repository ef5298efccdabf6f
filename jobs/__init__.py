"""Jobs: the queue, the GPU worker and the storage behind the UI (training never runs in the UI).

    settings.py  where state lives (environment variables)     models.py   the tables
    db.py        engines, WAL, migrations (migrations/)         runs.py     a run's states
    sink.py      engine records -> rows                         queries.py  what the UI reads
    attribution.py G²RPO's member arrays, float32                rollup.py   curves folded into buckets
    view.py      a Monitor page's data, polled                  legacy.py   the 0002 format (migration, bench)
    queue.py     Huey: SQLite or Redis                          worker.py   `python -m jobs.worker`
    supervise.py a job: start, watch, cancel the child          child.py    the training process
    api.py       the Python API (UI)                            __main__.py `python -m jobs` (CLI)
    export.py    zip of a run                                   bench.py    `python -m jobs.bench`
"""
