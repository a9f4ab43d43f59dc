# Offline image (make images): Debian's Prometheus and promtool with exactly
# the shared libraries ldd names for them, on an empty base.
FROM scratch
COPY root/ /
COPY --chown=65534:65534 data/ /prometheus/
USER 65534:65534
WORKDIR /prometheus
ENTRYPOINT ["/usr/local/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
