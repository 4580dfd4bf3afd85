"""Turns run directories into the delivery report."""

COMMANDS = {"report": "faultlab.reports.cli:command"}
