"""The exporter: architectures, routing the mixers through the op, tracing, writing, validating."""
