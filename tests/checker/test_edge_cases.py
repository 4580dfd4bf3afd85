"""The edge cases of issue 6, each spelled out: what the checker decides, and why."""

from __future__ import annotations

from runbuilder import counts, named


def test_ack_after_a_retry_whose_first_attempt_was_stored_is_not_a_duplicate(run):
    # exactly-once: attempt 1 stored but its ack was lost; attempt 2 hits the UNIQUE
    # client offset and the server acks the duplicate without a second row.
    r = run(level="exactly-once")
    content = r.send("c1", "m1")
    r.ev("c1", "attempt", msg="m1", n=1)
    r.broadcast(content, r.store(content, "c1-m1"))
    r.ev("c1", "attempt", msg="m1", n=2)
    r.ev("c1", "ack", msg="m1")
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert (v["metrics"]["attempts"], v["metrics"]["retries"], v["metrics"]["acks"]) == (2, 1, 1)


def test_an_at_least_once_retry_stored_twice_is_duplicated_stored(run):
    r = run(level="at-least-once")
    content = r.send("c1", "m1")
    r.ev("c1", "attempt", msg="m1", n=1)
    r.broadcast(content, r.store(content))
    r.ev("c1", "attempt", msg="m1", n=2)
    r.broadcast(content, r.store(content))
    r.ev("c1", "ack", msg="m1")
    r.quiesce()
    v = r.check()
    assert counts(v) == {"duplicated_stored": 1}
    assert named(v, "duplicated_stored") == [content]
    stored = [e for e in v["violations"]["duplicated_stored"]["messages"][0]["lifecycle"]
              if e["op"] == "stored"]
    assert [e["id"] for e in stored] == [1, 2], "one message, two rows"


def test_a_give_up_that_was_in_fact_stored_is_not_lost(run):
    r = run()
    content = r.send("c1", "m1")
    r.ev("c1", "attempt", msg="m1", n=1)
    r.broadcast(content, r.store(content))
    r.ev("c1", "give_up", msg="m1", reason="retries exhausted")
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert v["metrics"]["give_ups"] == 1


def test_a_give_up_never_stored_is_lost_given_up(run):
    r = run()
    content = r.send("c1", "m1")
    r.ev("c1", "attempt", msg="m1", n=1)
    r.ev("c1", "give_up", msg="m1", reason="retries exhausted")
    r.quiesce()
    v = r.check()
    assert counts(v) == {"lost": 1}
    entry = v["violations"]["lost"]["messages"][0]
    assert (entry["content"], entry["how"]) == (content, "given_up")


def test_a_receive_arriving_twice_but_shown_once_is_redelivered(run):
    r = run()
    r.disconnect("c2")
    rid = r.message("c1", "m1")
    r.connect("c2")
    r.deliver("c2", "c1:m1", rid)
    r.deliver("c2", "c1:m1", rid, show=False)
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert v["metrics"]["redelivered"] == 1


def test_a_refresh_from_zero_showing_everything_again_is_not_a_duplicate(run):
    r = run()
    first = r.message("c1", "m1")
    second = r.message("c2", "m2")
    r.disconnect("c2")
    r.session("c2", 0)
    r.connect("c2")
    r.deliver("c2", "c1:m1", first)
    r.deliver("c2", "c2:m2", second)
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert v["metrics"]["sessions"] == 3


def test_a_refresh_from_a_persisted_offset_must_not_show_older_rows_again(run):
    # rows at or below resume_from count as already seen in the new session
    r = run()
    first = r.message("c1", "m1")
    r.disconnect("c2")
    r.session("c2", first)
    r.connect("c2")
    r.deliver("c2", "c1:m1", first)
    r.quiesce()
    v = r.check()
    assert counts(v) == {"duplicated_delivered": 1}


def test_a_client_refreshed_from_a_persisted_offset_need_not_show_older_rows(run):
    r = run()
    first = r.message("c1", "m1")
    r.disconnect("c2")
    r.session("c2", first)
    r.connect("c2")
    second = r.message("c1", "m2")
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert second == 2


def test_rows_that_predate_the_run_are_not_the_runs(run):
    # three old rows: not phantoms, not required, but shown again by a refresh from 0
    r = run(pre_rows=3)
    rid = r.message("c1", "m1")
    r.disconnect("c2")
    r.session("c2", 0)
    r.connect("c2")
    for old in (1, 2, 3):
        r.deliver("c2", f"old-{old}", old)
    r.deliver("c2", "c1:m1", rid)
    r.quiesce()
    v = r.check()
    assert v["valid"] is True
    assert rid == 4


def test_a_client_resuming_from_zero_need_not_show_rows_that_predate_the_run(run):
    r = run(pre_rows=2)
    r.disconnect("c2")
    r.session("c2", 0)
    r.connect("c2")
    r.message("c1", "m1")
    r.quiesce()
    assert r.check()["valid"] is True


def test_a_history_cut_off_mid_line_is_checked_up_to_the_cut_and_reported(run):
    r = run()
    r.message("c1", "m1")
    r.quiesce()
    path = r.write() / "history.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"t": 9.5, "actor": "c1", "op": "se')
    from faultlab.harness.checker import check_run

    v = check_run(r.root)
    assert v["valid"] is True
    assert any("truncated" in w for w in v["warnings"])


def test_an_empty_history_with_an_empty_store_has_nothing_wrong(tmp_path):
    from faultlab.harness.checker import check_run

    (tmp_path / "history.jsonl").write_bytes(b"")
    (tmp_path / "store.jsonl").write_bytes(b"")
    v = check_run(tmp_path)
    assert v["valid"] is True
    assert v["metrics"]["sends"] == 0
    assert any("empty" in w for w in v["warnings"])
    assert v["metrics"]["ack_latency"] == {"p50": None, "p95": None, "p99": None, "max": None}


def test_an_empty_history_against_a_store_with_rows_finds_phantoms(tmp_path):
    from faultlab.harness.checker import check_run

    (tmp_path / "history.jsonl").write_bytes(b"")
    (tmp_path / "store.jsonl").write_bytes(b'{"id": 1, "client_offset": null, "content": "x"}\n')
    v = check_run(tmp_path)
    assert counts(v) == {"phantom": 1}
    assert any("run_start" in w for w in v["warnings"])


def test_an_unconverged_quiescence_with_only_undelivered_rows_is_unknown(run):
    r = run()
    r.disconnect("c2")
    r.message("c1", "m1")
    r.quiesce(ok=False)
    v = r.check()
    assert v["valid"] == "unknown"
    assert counts(v) == {"never_delivered": 1}
    assert v["metrics"]["converged"] is False


def test_an_unconverged_quiescence_does_not_excuse_a_loss(run):
    r = run()
    r.disconnect("c2")
    r.message("c1", "m1")
    r.send("c1", "m2")
    r.ev("c1", "attempt", msg="m2", n=1)
    r.quiesce(ok=False)
    v = r.check()
    assert v["valid"] is False
    assert counts(v) == {"lost": 1, "never_delivered": 1}


def test_a_history_without_quiesce_end_cannot_confirm_convergence(run):
    r = run()
    r.disconnect("c2")
    r.message("c1", "m1")
    v = r.check()
    assert v["valid"] == "unknown"
    assert any("quiesce_end" in w for w in v["warnings"])


def test_store_outcome_takes_precedence_over_deliveries(run):
    # deleted acked row: its receives now point at no row, and a client never showed
    # it; it is listed once, as lost_acked.
    r = run()
    r.message("c1", "m1")
    r.rows.clear()
    r.quiesce()
    v = r.check()
    assert counts(v) == {"lost_acked": 1}
