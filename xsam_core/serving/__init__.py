"""Serving past one GPU: `affinity` (the pure routing rule, no Ray) and `ray_serve` (the Ray Serve
deployment of the Predictor, its request router and a `model_runner`-compatible call; needs
`requirements-serve.txt`)."""
