"""Spatialization: speaker layouts, panning, voice trajectories and the OSC protocol adapters."""
