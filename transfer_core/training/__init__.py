"""The training loop, its callbacks and events, optimisers and schedules, and the LR finder."""
