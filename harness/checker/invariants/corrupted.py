"""corrupted: a receive (or show) whose content differs from the row at its offset.

The row's message is named (the client got something else in its place). A receive
of a sent message at an offset with no row is named under that message too; when
the message was never stored, its store outcome takes precedence.
"""

SQL = """
SELECT r.content AS key, d.actor AS client, NULL AS how
FROM (SELECT s.actor, d.off FROM dl d JOIN spans s USING (sid) WHERE d.bad) d
JOIN store r ON r.id = d.off
UNION ALL
SELECT d.content, d.actor, NULL
FROM (SELECT h.content, h.actor
      FROM (SELECT row FROM dl ANTI JOIN store r ON r.id = dl.off WHERE dl.bad) n
      JOIN h ON h.rowid = n.row) d
SEMI JOIN msgs m ON d.content = m.content
"""
