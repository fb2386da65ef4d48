"""Serve: the xDS protocol over gRPC (ADS state-of-the-world) and the registry of connected proxies."""
