"""The shapes world: generated scenes with exact ground truth for every task (the embedded model's data)."""

from .world import *  # noqa: F401,F403
from .world import main  # noqa: F401
