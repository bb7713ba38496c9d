# The RadPath client image (radpath CLI: classify, classify-cohort, merge-predictions).
# Build from the repository root:  docker build -f k8s/client.Dockerfile -t radpath-client:0.1.0 .
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY preprocess preprocess
COPY train train
COPY serving serving
COPY client client
RUN pip install --no-cache-dir . && rm -rf /src
USER 1000:1000
ENV HOME=/tmp TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /tmp
ENTRYPOINT []
CMD ["radpath", "--help"]
