# X-SAM demo on CPU (the embedded model answers out of the box; real weights are read from HF_HOME).
#
#   docker build -t xsam-demo .
#   docker run -p 7860:7860 -v xsam-hf:/data/hf xsam-demo                       # embedded model
#   docker run -p 7860:7860 -v xsam-hf:/data/hf -e XSAM_MODEL=hao9610/X-SAM xsam-demo
#   docker run -p 7860:7860 -v xsam-hf:/data/hf -e HF_HUB_OFFLINE=1 ...          # no network at all
#
# Hugging Face Docker Spaces run the container as uid 1000 on port 7860; so does this image.
#
# Two build arguments exist for builds without Docker Hub or the PyTorch index (scripts/container_check.py
# uses both): BASE, any image with Python 3.11 as `python`/`pip` on PATH and `useradd`; TORCH_SOURCE, the
# pip arguments that say where torch comes from; with a torch wheel dropped into wheels/:
#   docker build --build-arg TORCH_SOURCE="--find-links /tmp/wheels" -t xsam-demo .
ARG BASE=python:3.11-slim
FROM ${BASE}

RUN useradd --create-home --uid 1000 user \
 && mkdir -p /data/hf && chown -R 1000:1000 /data
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HOME=/data/hf
WORKDIR /home/user/app
# The server writes only to HF_HOME (the volume) and /tmp (Gradio's uploads and outputs): no .pyc files
# next to the code, matplotlib's font cache in /tmp (scripts/container_check.py checks with docker diff).

# torch first, from the CPU index: the default index serves a multi-GB CUDA build. requirements.txt
# pins torch==2.13.0, which this 2.13.0+cpu wheel satisfies, so it is not installed twice.
ARG TORCH_SOURCE="--index-url https://download.pytorch.org/whl/cpu"
COPY wheels/ /tmp/wheels/
RUN pip install torch==2.13.0 ${TORCH_SOURCE} && rm -rf /tmp/wheels
COPY --chown=user requirements.txt ./
RUN pip install -r requirements.txt

COPY --chown=user app.py ./
COPY --chown=user app ./app
COPY --chown=user xsam_core ./xsam_core
COPY --chown=user assets ./assets
COPY --chown=user checkpoints ./checkpoints

USER user
# Model downloads (hub ids) are cached here: mount a volume so they survive the container.
VOLUME /data/hf
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"
CMD ["python", "app.py"]
