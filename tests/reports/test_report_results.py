"""results.json agrees with the verdicts it was rendered from, and judges them right."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from faultlab.reports import render, summary_markdown
from faultlab.reports.kinds import VIOLATION_KINDS
from faultlab.reports.results import LISTED_PER_KIND, build
from faultlab.reports.synthetic import RunSpec, write_run


def _results(run_dirs: list[Path]) -> dict:
    """The results document, through JSON as a reader gets it (no charts: fast)."""
    return orjson.loads(orjson.dumps(build(run_dirs)))




def _verdict(run_dir: Path) -> dict:
    return orjson.loads((run_dir / "verdict.json").read_bytes())


def test_every_count_and_metric_matches_the_verdict(clean_run, violations_run, weak_run,
                                                     rendered):
    runs = [clean_run, violations_run, weak_run]
    doc = orjson.loads((rendered / "results.json").read_bytes())
    assert doc["schema"] == 1
    for run_dir, run in zip(runs, doc["runs"], strict=True):
        verdict = _verdict(run_dir)
        for kind in VIOLATION_KINDS:
            v = verdict["violations"][kind]
            assert run["counts"][kind] == v["count"], kind
            assert run["violations"][kind]["count"] == v["count"], kind
            listed = [m["msg"] for m in run["violations"][kind]["messages"]]
            assert listed == [m["msg"] for m in v["messages"][:LISTED_PER_KIND]], kind
        assert run["metrics"] == verdict["metrics"]
        assert run["valid"] == verdict["valid"]
    totals = doc["totals"]["violations"]
    for kind in VIOLATION_KINDS:
        assert totals[kind] == sum(_verdict(r)["violations"][kind]["count"] for r in runs)


def test_a_clean_run_passes_with_a_clean_cell(clean_run):
    doc = _results([clean_run])
    assert doc["outcome"] == "pass"
    (run,) = doc["runs"]
    assert run["outcome"] == "pass" and run["reasons"] == []
    assert not any(t["crossed"] for t in run["thresholds"])
    assert [c["state"] for c in doc["matrix"]["cells"]] == ["clean"]
    assert "PASS" in summary_markdown([clean_run])


def test_unexpected_violations_fail_the_run_and_redden_the_cell(violations_run, tmp_path):
    doc = _results([violations_run])
    (run,) = doc["runs"]
    assert run["outcome"] == "fail" and run["outcome_by"] == "report"
    assert run["expectation"]["unexpected"] == list(VIOLATION_KINDS)
    (cell,) = doc["matrix"]["cells"]
    assert cell["state"] == "unexpected"
    assert cell["groups"] == {"lost": 4, "duplicated": 4, "out of order": 4,
                              "never delivered": 2, "other": 4}
    crossed = {t["name"]: t["observed"] for t in doc["thresholds_crossed"]}
    assert crossed == {"max_lost": 4, "max_duplicates": 4}


def test_an_expected_loss_is_an_expected_cell_not_a_failure(weak_run, tmp_path):
    doc = _results([weak_run])
    (run,) = doc["runs"]
    assert run["counts"]["lost"] == 3
    assert run["outcome"] == "pass", run["reasons"]
    assert doc["matrix"]["cells"][0]["state"] == "expected"
    assert doc["matrix"]["cells"][0]["fault_kind"] == "kill9"


def test_an_expected_kind_that_never_shows_is_flagged(tmp_path):
    run_dir = write_run(RunSpec(name="blind", expected=["lost"]), tmp_path / "blind")
    doc = _results([run_dir])
    assert doc["runs"][0]["expectation"]["missing"] == ["lost"]
    assert doc["runs"][0]["outcome"] == "fail"
    assert doc["matrix"]["cells"][0]["state"] == "missing"


def test_the_gates_outcome_wins_but_the_reasons_stay(tmp_path):
    run_dir = write_run(RunSpec(name="gated", violations={"lost": 1}, expected=[],
                                outcome="pass"), tmp_path / "gated")
    doc = _results([run_dir])
    run = doc["runs"][0]
    assert (run["outcome"], run["outcome_by"]) == ("pass", "gate")
    assert "unexpected lost" in run["reasons"]


def test_unconverged_never_delivered_is_unknown(tmp_path):
    run_dir = write_run(RunSpec(name="slow", violations={"never_delivered": 1}, expected=[],
                                quiesce_ok=False, thresholds={}), tmp_path / "slow")
    doc = _results([run_dir])
    assert doc["runs"][0]["valid"] == "unknown"
    assert doc["runs"][0]["outcome"] == "unknown"
    assert doc["runs"][0]["expectation"]["undecided"] == ["never_delivered"]
    assert doc["matrix"]["cells"][0]["state"] == "unknown"
    assert doc["outcome"] == "unknown"


def test_count_thresholds_ignore_the_kinds_a_scenario_allows(tmp_path):
    spec = RunSpec(name="allowed", violations={"lost": 2, "duplicated_stored": 1},
                   expected=["lost"], thresholds={"max_lost": 0, "max_duplicates": 0})
    doc = _results([write_run(spec, tmp_path / "allowed")])
    limits = {t["name"]: (t["observed"], t["crossed"]) for t in doc["runs"][0]["thresholds"]}
    assert limits == {"max_lost": (0, False), "max_duplicates": (1, True)}


def test_each_listed_violation_carries_its_lifecycle_and_faults(violations_run, tmp_path):
    run = _results([violations_run])["runs"][0]
    lost_acked = run["violations"]["lost_acked"]["messages"][0]
    assert [e["op"] for e in lost_acked["lifecycle"]] == ["send", "attempt", "ack"]
    dup = run["violations"]["duplicated_stored"]["messages"][0]
    assert [e["op"] for e in dup["lifecycle"] if e["op"] == "row"] == ["row", "row"]
    never = run["violations"]["never_delivered"]["messages"][0]
    shows = {e["actor"] for e in never["lifecycle"] if e["op"] == "show"}
    assert never["clients"] == ["c1"] and "c1" not in shows and "c2" in shows
    during = [e for m in run["violations"]["sender_reordered"]["messages"]
              for e in m["lifecycle"] if e["faults"]]
    assert during, "a message caught in a partition names the fault in its lifecycle"


def test_long_violation_lists_are_capped_with_a_count(tmp_path):
    run_dir = write_run(RunSpec(name="many", messages=200, violations={"lost": 27},
                                expected=["lost"]), tmp_path / "many")
    run = _results([run_dir])["runs"][0]["violations"]["lost"]
    assert (run["count"], len(run["messages"]), run["not_listed"]) == (27, 20, 7)


def test_recovery_and_convergence_per_fault_and_client(tmp_path):
    early_miss = RunSpec(name="miss", violations={"never_delivered": 1}, expected=[])
    run = _results([write_run(early_miss, tmp_path / "miss")])["runs"][0]
    assert [f["fault"] for f in run["faults"]] == ["f1", "f2"]
    for fault in run["faults"]:
        assert {c["client"] for c in fault["clients"]} == {"c1", "c2", "c3", "c4"}
        for c in fault["clients"]:
            assert c["recovery_disconnected"] and c["recovery_recovered"]
            assert 0 <= c["recovery_seconds"] < 1
    never = {c["client"] for f in run["faults"] for c in f["clients"]
             if c["convergence_seconds"] is None}
    assert never == {"c1"}, "only the client that missed a row never converges"
    assert run["reconnects_in_history"] == {"reconnects": 8, "recovered": 8,
                                            "recovered_ratio": 1.0}


def test_timeline_bins_add_up_to_the_history(clean_run, tmp_path):
    run = _results([clean_run])["runs"][0]
    tl = run["timeline"]
    sends = sum(r * tl["bin_seconds"] for r in tl["rates"]["send"])
    assert sends == pytest.approx(run["metrics"]["sends"], rel=1e-3)
    shows = sum(r * tl["bin_seconds"] for r in tl["rates"]["show"])
    assert shows == pytest.approx(run["metrics"]["sends"] * 4, rel=1e-3)


def test_rendering_again_gives_the_same_bytes(clean_run, violations_run, weak_run, rendered,
                                              tmp_path):
    render([clean_run, violations_run, weak_run], tmp_path)
    for name in ("index.html", "results.json", "summary.md"):
        assert (tmp_path / name).read_bytes() == (rendered / name).read_bytes()


def test_the_page_shows_the_matrix_timelines_and_violations(rendered):
    page = (rendered / "index.html").read_text()
    assert 'id="guarantee-matrix"' in page
    assert page.count('class="chart timeline"') == 3
    assert page.count('data-state="unexpected"') == 1
    assert "lost_acked: 2 messages" in page
    assert "<script" not in page and "http://" not in page.replace(
        "http://www.w3.org", "")


def test_summary_markdown_names_the_failure_and_the_replay(violations_run, weak_run):
    md = summary_markdown([violations_run, weak_run])
    assert md.startswith("## faultlab delivery report: ❌ FAIL")
    assert "| at-least-once |  | ❌ unexpected (lost 4, duplicated 4," in md
    assert "| at-most-once | ☑️ expected (lost 3) |" in md
    assert "unexpected lost_acked" in md
    assert "replay: `faultlab run --seed 5" in md
    assert len(md.splitlines()) < 30
