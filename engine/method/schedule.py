"""Which grid points a G²RPO completion visits: torch-free, so configs are checked without torch."""
from __future__ import annotations

from typing import Literal

CompletionEnd = Literal["append_zero", "authors"]


def completion_schedule(k: int, lam: int, steps: int, end: CompletionEnd = "append_zero") -> list[int]:
    """Grid indices the ODE completion of a branch at step k visits at granularity lam.

    The branch's SDE step lands on index k + 1; the completion then follows
    s[0 : k+2] ++ s[k+2 :: lam] from k + 1: one fine step to k + 2, then strides of lam.
    Where the strides stop short of s = 0 (say at s_j), the two ends differ:

    "append_zero": append index T. Its Euler step x_j - s_j v_j is x0_hat predicted AT s_j, the
        last point of the strided schedule, so every trajectory ends at s = 0.
    "authors": the authors' `run_ode_sample_step` returns the x0_hat = x - s v of its last loop
        iteration, which runs at the SECOND-TO-LAST point s_i of the schedule (its step on to s_j
        is computed and thrown away). That is the same image as dropping s_j and stepping from
        s_i straight to s = 0, which is what this schedule does: a blurrier image, predicted from
        a noisier point. Where the strides reach s = 0 both ends are the same schedule.
    """
    if not 0 <= k < steps:
        raise ValueError(f"branch step k={k} outside 0..{steps - 1}")
    if lam < 1:
        raise ValueError(f"granularity must be >= 1, got {lam}")
    if end not in ("append_zero", "authors"):
        raise ValueError(f"unknown completion end {end!r}; 'append_zero' or 'authors'")
    schedule = [k + 1] + list(range(k + 2, steps + 1, lam))
    if schedule[-1] != steps:
        if end == "authors" and len(schedule) > 1:
            schedule.pop()
        schedule.append(steps)
    return schedule
