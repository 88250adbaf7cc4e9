# The twin-stream application image: bridge, worker, sink, simulator and tools.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY twin_stream ./twin_stream
COPY simulators ./simulators
RUN pip install --no-cache-dir . \
 && groupadd --gid 1883 twin && useradd --uid 1883 --gid 1883 --create-home twin \
 && mkdir -p /data /auth/broker /auth/bridge /auth/devices /tls/ca /tls/server /tls/public \
 && chown -R twin:twin /data /auth /tls
# uid 1883 is also the mosquitto image's user, so both can read the generated password file and
# the broker's TLS key. The folders are there, owned by uid 1883, for docker-compose.yml to mount
# one named volume on each: a new volume takes the owner of the folder it is mounted on.
USER 1883:1883
CMD ["twin-stream", "--help"]
