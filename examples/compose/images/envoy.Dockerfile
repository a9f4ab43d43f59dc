# Offline image (make images): the Envoy binary `make envoy` installed and
# exactly the shared libraries ldd names for it, on an empty base.
FROM scratch
COPY . /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/envoy"]
CMD ["--version"]
