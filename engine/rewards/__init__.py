from engine.rewards.base import Reward, build_reward, register_reward, reward_names

__all__ = ["Reward", "build_reward", "register_reward", "reward_names"]
