"""The OSC stream for visuals: the agent's state and plan as OSC messages (see state.py)."""
