"""What each `train --init ... --freeze` choice trains (finetune.py applies it).

Plain data without torch, so the command line can describe the choices without loading it.
"""

from __future__ import annotations

# The output heads: everything after the GRU state (net.py).
HEAD_MODULES = ("state_to_heads", "query", "out")

# Old-corpus works per new work, drawn each epoch of a fine-tune (--rehearse; train.py).
DEFAULT_REHEARSE = 2.0

FREEZE = {
    "core": "the added styles' rows and the output heads (state_to_heads, query, out); the "
            "input embeddings, bos, the GRU and the old style rows stay as they were",
    "none": "every weight",
}
