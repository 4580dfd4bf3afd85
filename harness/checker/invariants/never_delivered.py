"""never_delivered: a run row above the session's resume_from that a converging client's
last display session never showed (clients that left are not judged)."""

SQL = """
SELECT n.content AS key, n.actor AS client, NULL AS how
FROM (SELECT c.actor, c.sid, r.id, r.content
      FROM clients c JOIN run_rows r ON r.id > c.resume_from
      WHERE NOT c.left_run) n
ANTI JOIN (SELECT sid, off FROM seen WHERE shows > 0) s ON n.sid = s.sid AND n.id = s.off
"""
