"""Serving an exported folder over HTTP on Ray Serve, with continuous batching (docs/serving.md)."""
