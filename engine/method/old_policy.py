"""DiffusionNFT's old policy as a slowly updated copy of the trained weights (the authors' design).

After every iteration theta_old <- d * theta_old + (1 - d) * theta. Rollouts sample with theta_old and
the loss contrasts the trained velocity against theta_old's, so each update is pulled towards a
smoothed policy instead of the last one: the gradient noise of single iterations averages out. With
d = 0 (the default) theta_old is the policy at the start of each iteration, the rollout policy.
"""
from __future__ import annotations

import contextlib

import torch


class OldPolicy:
    def __init__(self, params: list[torch.Tensor], decay: float):
        self.params, self.decay = params, decay
        self.weights = [p.detach().clone() for p in params]

    @contextlib.contextmanager
    def active(self):
        """Within: the trained parameters hold theta_old; on exit they hold theta again."""
        with torch.no_grad():
            current = [p.detach().clone() for p in self.params]
            for p, old in zip(self.params, self.weights):
                p.copy_(old)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, c in zip(self.params, current):
                    p.copy_(c)

    @torch.no_grad()
    def update(self) -> None:
        for old, p in zip(self.weights, self.params):
            old.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)

    def state(self) -> list[torch.Tensor]:
        return [w.cpu() for w in self.weights]

    @torch.no_grad()
    def load(self, state: list[torch.Tensor]) -> None:
        for w, saved in zip(self.weights, state, strict=True):
            w.copy_(saved)
