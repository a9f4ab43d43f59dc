# Envoy for users with a registry (`docker-compose build`): the official
# image at the release shadowlab is tested against (envoy/VERSION). Offline,
# `make images` builds the same tag from the local binary
# (images/envoy.Dockerfile).
FROM envoyproxy/envoy:v1.40.0
