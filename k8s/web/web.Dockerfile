# The RadPath web image: the site and its workers (radpath web, radpath web-worker, radpath users).
# The light install plus the web extra (no TensorFlow, JAX or Flax); NiiVue from npm in a build stage,
# served by the site from our own origin (no CDN).
# Build from the repository root:  docker build -f k8s/web/web.Dockerfile -t radpath-web:0.1.0 .
FROM node:20-slim AS niivue
WORKDIR /web
COPY radpath/web/package.json radpath/web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY radpath radpath
RUN pip install --no-cache-dir '.[web]' && rm -rf /src
COPY --from=niivue /web/node_modules/@niivue/niivue/dist/index.js /opt/niivue/index.js
ENV RADPATH_WEB_NIIVUE_JS=/opt/niivue/index.js
USER 1000:1000
ENV HOME=/tmp
WORKDIR /tmp
EXPOSE 8080
CMD ["radpath", "web", "--host", "0.0.0.0"]
