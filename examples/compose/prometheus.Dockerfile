# Prometheus for users with a registry (`docker-compose build`): the official
# image at the release Debian 12 ships. Offline, `make images` builds the
# same tag from Debian's package (images/prometheus.Dockerfile).
FROM prom/prometheus:v2.42.0
