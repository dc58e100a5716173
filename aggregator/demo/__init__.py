"""Offline demo content: fictional publications served over loopback HTTP."""
