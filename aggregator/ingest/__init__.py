"""Fetching, parsing, extraction and scheduling: the network-facing half of the product."""
