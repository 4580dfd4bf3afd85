"""The reference chat server: the system under test."""

COMMANDS = {"server": "faultlab.server.__main__:command"}
