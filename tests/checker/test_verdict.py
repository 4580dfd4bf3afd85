"""The verdict's shape: lifecycles, overlapping faults, the 100 cap, byte-identical output."""

from __future__ import annotations

import orjson
from runbuilder import counts

from faultlab.harness.checker import check_run


def test_a_violation_carries_its_whole_lifecycle_and_the_faults_that_overlap_it(run):
    r = run()
    r.message("c2", "m0")
    fault = {"fault": "f1", "kind": "network", "target": ["c2"], "params": {"toxic": "timeout"}}
    r.ev("nemesis", "fault_start", **fault)
    content = r.send("c1", "m1")
    r.ev("c1", "attempt", msg="m1", n=1)
    r.ev("c1", "attempt", msg="m1", n=2)
    r.ev("c1", "ack", msg="m1")
    r.ev("nemesis", "fault_end", **fault)
    later = {"fault": "f2", "kind": "process", "target": "server", "params": {}}
    r.ev("nemesis", "fault_start", **later)
    r.ev("nemesis", "fault_end", **later)
    r.quiesce()
    v = r.check()
    assert counts(v) == {"lost_acked": 1}
    entry = v["violations"]["lost_acked"]["messages"][0]
    assert [e["op"] for e in entry["lifecycle"]] == ["send", "attempt", "attempt", "ack"]
    assert entry["lifecycle"][0]["content"] == content
    lines = (r.root / "history.jsonl").read_bytes().splitlines()
    for e in entry["lifecycle"]:
        assert orjson.loads(lines[e["line"] - 1])["op"] == e["op"]
    assert [f["fault"] for f in entry["faults"]] == ["f1"]
    assert entry["faults"][0]["target"] == ["c2"]
    assert entry["faults"][0]["params"] == {"toxic": "timeout"}
    assert entry["faults"][0]["start"] < entry["faults"][0]["end"]


def test_at_most_100_per_kind_in_the_verdict_and_all_in_violations_jsonl(run):
    r = run()
    for i in range(150):
        r.send("c1", f"m{i}")
    r.quiesce()
    v = r.check()
    lost = v["violations"]["lost"]
    assert (lost["count"], len(lost["messages"]), lost["more"]) == (150, 100, 50)
    assert [m["msg"] for m in lost["messages"]] == [f"m{i}" for i in range(100)]
    lines = (r.root / "violations.jsonl").read_bytes().splitlines()
    assert len(lines) == 150
    assert {orjson.loads(line)["kind"] for line in lines} == {"lost"}


def test_the_same_inputs_give_byte_identical_output(run):
    r = run()
    r.message("c1", "m1")
    r.disconnect("c2")
    r.message("c1", "m2")
    r.send("c1", "m3")
    r.broadcast("ghost", r.store("ghost"))
    r.quiesce()
    r.check()
    first = [(r.root / n).read_bytes() for n in ("verdict.json", "violations.jsonl")]
    check_run(r.root)
    again = [(r.root / n).read_bytes() for n in ("verdict.json", "violations.jsonl")]
    assert first == again
    assert len(first[1].splitlines()) == 3


def test_recovery_time_is_when_every_client_showed_what_was_stored_before_fault_end(run):
    r = run()
    fault = {"fault": "f1", "kind": "network", "target": ["c2"], "params": {}}
    r.ev("nemesis", "fault_start", **fault)
    r.disconnect("c2")
    rid = r.message("c1", "m1")
    r.ev("nemesis", "fault_end", **fault)
    end_t = r.t
    r.connect("c2")
    r.deliver("c2", "c1:m1", rid)
    shown_t = r.t
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    [recovery] = v["metrics"]["recovery_time"]
    assert recovery["fault"] == "f1" and recovery["kind"] == "network"
    assert abs(recovery["seconds"] - (shown_t - end_t)) < 1e-6
    stable = v["metrics"]["stable_latency"]["max"]
    send_t = next(e["t"] for e in r.events if e["op"] == "send")
    assert abs(stable - (shown_t - send_t)) < 1e-6


def test_recovery_time_is_null_when_a_client_never_caught_up(run):
    r = run()
    fault = {"fault": "f1", "kind": "network", "target": ["c2"], "params": {}}
    r.ev("nemesis", "fault_start", **fault)
    r.disconnect("c2")
    r.message("c1", "m1")
    r.ev("nemesis", "fault_end", **fault)
    r.connect("c2")
    r.quiesce()
    v = r.check()
    assert v["metrics"]["recovery_time"] == [{"fault": "f1", "kind": "network", "seconds": None}]


def test_metrics_count_what_happened(run):
    r = run()
    r.message("c1", "m1")
    r.disconnect("c2")
    r.connect("c2", recovered=True)
    r.message("c2", "m2")
    r.quiesce()
    m = r.check()["metrics"]
    assert (m["sends"], m["attempts"], m["acks"], m["reconnects"], m["recovered"]) == (
        2, 2, 2, 1, 1)
    assert m["recovered_ratio"] == 1.0
    assert (m["recvs"], m["shows"], m["clients"]) == (4, 4, 2)
    assert m["ack_latency"]["max"] is not None
