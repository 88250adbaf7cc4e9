# The twin-stream application image: bridge, worker, sink, simulator and tools.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY twin_stream ./twin_stream
COPY simulators ./simulators
RUN pip install --no-cache-dir . \
 && groupadd --gid 1883 twin && useradd --uid 1883 --gid 1883 --create-home twin \
 && mkdir -p /data /auth && chown twin:twin /data /auth
# uid 1883 is also the mosquitto image's user, so both can read the generated password file.
USER 1883:1883
CMD ["twin-stream", "--help"]
