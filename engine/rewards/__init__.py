from engine.rewards.base import Reward, build_reward, held_out_rewards, register_reward, reward_names

__all__ = ["Reward", "build_reward", "held_out_rewards", "register_reward", "reward_names"]
