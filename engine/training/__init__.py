"""The trainer's machinery: the training loop (trainer), checkpoints and their checksums, the
records, experiment trackers, stop requests, the LoRA model card and Hub push, and the stored branch
images. Errors a run stops with are in errors.

May import: engine.method, engine.algorithms, engine.models, engine.rewards, engine.config. Never
app/ or jobs/.
"""
