"""Every violation kind on a hand-written history: one that has it, one that does not."""

from __future__ import annotations

from runbuilder import counts, named


def test_clean_run_is_valid(run):
    r = run()
    r.message("c1", "m1")
    r.message("c2", "m2")
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert counts(v) == {}
    assert set(v["violations"]) == {
        "lost_acked", "lost", "duplicated_stored", "sender_reordered", "phantom",
        "corrupted", "duplicated_delivered", "out_of_order", "never_delivered",
    }


def test_lost_acked_is_an_ack_without_a_row(run):
    r = run()
    r.message("c1", "m1")
    content = r.send("c2", "m2")
    r.ev("c2", "attempt", msg="m2", n=1)
    r.ev("c2", "ack", msg="m2")
    r.quiesce()
    v = r.check()
    assert counts(v) == {"lost_acked": 1}
    assert named(v, "lost_acked") == [content]
    assert v["violations"]["lost_acked"]["messages"][0]["msg"] == "m2"


def test_lost_is_split_silent_and_given_up(run):
    r = run()
    silent = r.send("c1", "m1")
    r.ev("c1", "attempt", msg="m1", n=1)
    gave_up = r.send("c2", "m2")
    r.ev("c2", "attempt", msg="m2", n=1)
    r.ev("c2", "give_up", msg="m2", reason="retries exhausted")
    r.quiesce()
    v = r.check()
    lost = v["violations"]["lost"]
    assert counts(v) == {"lost": 2}
    assert {m["content"]: m["how"] for m in lost["messages"]} == {
        silent: "silent", gave_up: "given_up"}
    assert (lost["silent"], lost["given_up"]) == (1, 1)


def test_a_rejected_message_is_not_lost(run):
    r = run()
    r.send("c1", "m1")
    r.ev("c1", "attempt", msg="m1", n=1)
    r.ev("c1", "reject", msg="m1", error="invalid")
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert v["metrics"]["rejects"] == 1


def _two_rows_swapped(r) -> tuple[str, str]:
    first = r.send("c1", "m1")
    r.ev("c1", "attempt", msg="m1", n=1)
    second = r.send("c1", "m2")
    r.ev("c1", "attempt", msg="m2", n=1)
    r.broadcast(second, r.store(second))
    r.broadcast(first, r.store(first))
    r.ev("c1", "ack", msg="m2")
    r.ev("c1", "ack", msg="m1")
    r.quiesce()
    return first, second


def test_sender_reordered_names_the_message_stored_too_early(run):
    r = run(level="exactly-once")
    _, second = _two_rows_swapped(r)
    v = r.check()
    assert counts(v) == {"sender_reordered": 1}
    assert named(v, "sender_reordered") == [second]


def test_sender_order_is_not_judged_at_a_level_without_the_promise(run):
    r = run(level="at-most-once")
    _two_rows_swapped(r)
    v = r.check()
    assert v["valid"] is True


def test_phantom_row_and_phantom_receive(run):
    r = run()
    r.message("c1", "m1")
    r.broadcast("ghost-row", r.store("ghost-row"))
    r.deliver("c2", "ghost-recv", 99)
    r.quiesce()
    v = r.check()
    assert counts(v) == {"phantom": 2}
    assert sorted(named(v, "phantom")) == ["ghost-recv", "ghost-row"]
    recv = next(m for m in v["violations"]["phantom"]["messages"] if m["content"] == "ghost-recv")
    assert recv["msg"] is None and recv["clients"] == ["c2"]


def test_corrupted_names_the_row_and_the_client(run):
    r = run()
    r.connected.remove("c2")
    rid = r.message("c1", "m1")
    r.connected.append("c2")
    r.deliver("c2", "garbled", rid)
    r.quiesce()
    v = r.check()
    assert counts(v) == {"corrupted": 1}
    entry = v["violations"]["corrupted"]["messages"][0]
    assert (entry["msg"], entry["clients"]) == ("m1", ["c2"])
    assert any(e["op"] == "recv" and e["content"] == "garbled" for e in entry["lifecycle"])


def test_a_sent_message_received_at_an_offset_with_no_row_is_corrupted(run):
    r = run()
    r.connected.remove("c2")
    r.message("c1", "m1")
    r.connected.append("c2")
    r.deliver("c2", "c1:m1", 7)
    r.deliver("c2", "c1:m1", 1)
    r.quiesce()
    v = r.check()
    assert counts(v) == {"corrupted": 1}
    assert named(v, "corrupted") == ["c1:m1"]


def test_duplicated_delivered_is_one_row_shown_twice(run):
    r = run()
    rid = r.message("c1", "m1")
    r.deliver("c2", "c1:m1", rid)
    r.quiesce()
    v = r.check()
    assert counts(v) == {"duplicated_delivered": 1}
    assert v["violations"]["duplicated_delivered"]["messages"][0]["clients"] == ["c2"]


def test_a_receive_twice_shown_once_is_redelivered_not_a_violation(run):
    r = run()
    rid = r.message("c1", "m1")
    r.deliver("c2", "c1:m1", rid, show=False)
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert v["metrics"]["redelivered"] == 1


def test_out_of_order_names_the_late_show(run):
    r = run()
    r.connected.remove("c2")
    first = r.message("c1", "m1")
    second = r.message("c1", "m2")
    r.connected.append("c2")
    r.deliver("c2", "c1:m2", second)
    r.deliver("c2", "c1:m1", first)
    r.quiesce()
    v = r.check()
    assert counts(v) == {"out_of_order": 1}
    assert named(v, "out_of_order") == ["c1:m1"]


def test_never_delivered_is_a_row_a_converging_client_never_showed(run):
    r = run()
    r.disconnect("c2")
    r.message("c1", "m1")
    r.connect("c2")
    r.quiesce()
    v = r.check()
    assert counts(v) == {"never_delivered": 1}
    assert v["violations"]["never_delivered"]["messages"][0]["clients"] == ["c2"]


def test_a_client_that_caught_up_converged(run):
    r = run()
    r.disconnect("c2")
    rid = r.message("c1", "m1")
    r.connect("c2")
    r.deliver("c2", "c1:m1", rid)
    r.quiesce()
    assert r.check()["valid"] is True


def test_a_client_that_left_is_not_judged_for_convergence(run):
    r = run()
    r.disconnect("c2")
    r.ev("c2", "leave")
    r.message("c1", "m1")
    r.quiesce()
    assert r.check()["valid"] is True


def test_out_of_order_names_every_show_below_an_earlier_one(run):
    # shows 1, 4, 2, 3: rows 2 and 3 both came after row 4
    r = run()
    r.connected.remove("c2")
    rids = [r.message("c1", f"m{i}") for i in range(1, 5)]
    r.connected.append("c2")
    for i in (1, 4, 2, 3):
        r.deliver("c2", f"c1:m{i}", rids[i - 1])
    r.quiesce()
    v = r.check()
    assert counts(v) == {"out_of_order": 2}
    assert named(v, "out_of_order") == ["c1:m2", "c1:m3"]
