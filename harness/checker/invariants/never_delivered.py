"""never_delivered: a run row above the session's resume_from that a converging client's
last display session never showed (clients that left are not judged).

Nearly every run delivers everything, so a count comes first: a client missed a row
exactly when the run rows above its resume_from outnumber those its last session
showed (store ids are unique, so is `seen` per session and offset). When no receive
is bad, every offset in `seen` is a store id, so one above store_max_id is a run row
and the count needs no probe of run_rows; a bad receive opens the gate. The anti
join, which hashes every shown offset, runs only when the gate opens.
"""

GATE = """
SELECT (SELECT count(*) > 0 FROM dl WHERE bad) OR coalesce(bool_or(need > coalesce(got, 0)), false)
FROM (
  SELECT c.sid, (SELECT count(*) FROM run_rows r WHERE r.id > c.resume_from) AS need
  FROM clients c WHERE NOT c.left_run) n
LEFT JOIN (
  SELECT s.sid, count(*) AS got FROM seen s JOIN clients c USING (sid)
  WHERE NOT c.left_run AND s.shows > 0 AND s.off > c.resume_from
    AND s.off > (SELECT store_max_id FROM facts)
  GROUP BY s.sid) g USING (sid)
"""

SQL = """
SELECT n.content AS key, n.actor AS client, NULL AS how
FROM (SELECT c.actor, c.sid, r.id, r.content
      FROM clients c JOIN run_rows r ON r.id > c.resume_from
      WHERE NOT c.left_run) n
ANTI JOIN (SELECT sid, off FROM seen WHERE shows > 0) s ON n.sid = s.sid AND n.id = s.off
"""
