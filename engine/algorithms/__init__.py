"""Algorithms by name. Each is a small module over the shared sampling and objective math."""
from engine.algorithms.base import Algorithm, Rollout
from engine.algorithms.diffusionnft import DiffusionNFT
from engine.algorithms.g2rpo import EGRPO, G2RPO
from engine.algorithms.sde_baselines import DanceGRPO, FlowGRPO, MixGRPO

ALGORITHM_CLASSES = {"g2rpo": G2RPO, "egrpo": EGRPO, "dancegrpo": DanceGRPO, "flowgrpo": FlowGRPO, "mixgrpo": MixGRPO,
                     "diffusionnft": DiffusionNFT}


def build_algorithm(cfg) -> Algorithm:
    return ALGORITHM_CLASSES[cfg.algorithm.name](cfg)


__all__ = ["Algorithm", "Rollout", "build_algorithm", "ALGORITHM_CLASSES"]
