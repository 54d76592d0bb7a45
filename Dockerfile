# The operator image the Helm chart runs: `kubectl-lane operator`.
FROM python:3.12-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lanes ./lanes
RUN pip install --no-cache-dir . && rm -rf /src
USER 65532:65532
ENTRYPOINT ["kubectl-lane"]
CMD ["operator"]
