"""`python -m engine.study`: G²RPO against the baselines at an equal budget of model evaluations.

Read top to bottom: plan.py (methods, seeds, budget), runs.py (train one run to the budget,
resumable), evaluate.py (score checkpoints, cached), tables.py and curves.py (table.md,
curves.html), cost.py (cost.md), report.py (all outputs), __main__.py (the CLI).
"""
