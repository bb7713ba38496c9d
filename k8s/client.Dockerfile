# The RadPath client image (radpath CLI: classify, classify-cohort, merge-predictions, evaluate, inspect).
# The light install: no TensorFlow, JAX or Flax (TF Serving's wire format comes from radpath/contract/tfs_api),
# so every pod of the batch Job pulls a few hundred MB instead of about 3 GB.
# Build from the repository root:  docker build -f k8s/client.Dockerfile -t radpath-client:0.1.0 .
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY radpath radpath
RUN pip install --no-cache-dir '.[client]' && rm -rf /src
USER 1000:1000
ENV HOME=/tmp
WORKDIR /tmp
ENTRYPOINT []
CMD ["radpath", "--help"]
