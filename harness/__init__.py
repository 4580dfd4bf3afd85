"""The engine: processes, fault proxy, clients, history, nemesis, checker."""

COMMANDS = {
    "proxy": "faultlab.harness.proxy.cli:command",
    "run": "faultlab.harness.run:command",
    "check": "faultlab.harness.checker.cli:command",
    "doctor": "faultlab.harness.doctor:command",
}
