"""Offline data preparation: corpus fetchers, manifest builders and the shard builder."""
