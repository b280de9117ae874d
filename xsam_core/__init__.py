"""X-SAM inference core: model, checkpoints, tasks, predictor. No Gradio imports here."""
