# Offline image (make images): shadowlab, the example service and the
# admission plugin, static binaries on an empty base. The context is the
# directory images.sh stages.
FROM scratch
COPY usr/ /usr/
COPY --chown=65532:65532 data/ /data/
COPY --chown=65532:65532 bootstrap/ /bootstrap/
COPY --chown=65532:65532 tmp/ /tmp/
ENV PATH=/usr/local/bin
USER 65532:65532
ENTRYPOINT []
CMD ["shadowlab", "--help"]
