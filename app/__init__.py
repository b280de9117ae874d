"""The Gradio app (UI only): `build_demo(predictor)` gives the page, `launch_options()` its launch settings."""

from .layout import build_demo, launch_options

__all__ = ["build_demo", "launch_options"]
