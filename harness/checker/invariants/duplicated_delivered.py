"""duplicated_delivered: one row shown twice in one display session.

A row at or below the session's `resume_from` counts as already seen, so showing it
is a second show; a new session (a page refresh) starts a fresh count. The row's
message is named.
"""

SQL = """
SELECT r.content AS key, d.actor AS client, NULL AS how
FROM (SELECT s.sid, s.off FROM seen s JOIN spans p USING (sid)
      WHERE s.shows > 1 OR (s.shows > 0 AND s.off <= p.resume_from)) s
JOIN spans d USING (sid) JOIN store r ON r.id = s.off
"""
