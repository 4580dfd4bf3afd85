"""duplicated_delivered: one row shown twice in one display session.

A row at or below the session's `resume_from` counts as already seen, so showing it
is a second show; a new session (a page refresh) starts a fresh count. The row's
message is named.
"""

SQL = """
SELECT r.content AS key, d.actor AS client, NULL AS how
FROM (SELECT aid, off FROM seen WHERE shows > 1 OR (shows > 0 AND off <= resume_from)) s
JOIN actors d USING (aid) JOIN store r ON r.id = s.off
"""
