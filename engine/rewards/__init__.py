from engine.rewards.base import (Reward, build_reward, held_out_rewards, register_reward, reward_names,
                                 reward_problems)

__all__ = ["Reward", "build_reward", "held_out_rewards", "register_reward", "reward_names", "reward_problems"]
