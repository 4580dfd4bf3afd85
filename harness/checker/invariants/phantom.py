"""phantom: a run row, or a receive at an offset with no row, whose content no one sent."""

SQL = """
SELECT r.content AS key, NULL AS client, NULL AS how
FROM run_rows r ANTI JOIN msgs m ON r.content = m.content
UNION ALL
SELECT d.content, d.actor, NULL
FROM (SELECT h.content, h.actor
      FROM (SELECT row FROM dl ANTI JOIN store r ON r.id = dl.off WHERE dl.bad) n
      JOIN h ON h.rowid = n.row) d
ANTI JOIN msgs m ON d.content = m.content
"""
