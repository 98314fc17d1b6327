"""Throughput reports: cycle accounting, the report record and its formats, plots."""
