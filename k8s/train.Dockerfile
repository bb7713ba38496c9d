# The RadPath training image for GPU nodes: the project plus JAX's CUDA 12 wheels (which bundle the
# CUDA libraries; the node provides the NVIDIA driver).
# Build from the repository root:  docker build -f k8s/train.Dockerfile -t radpath-train:0.1.0 .
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY radpath radpath
RUN pip install --no-cache-dir ".[train,cuda]" && rm -rf /src
USER 1000:1000
ENV HOME=/tmp
WORKDIR /tmp
CMD ["radpath", "--help"]
