"""out_of_order: a show below an earlier show of the same session; names the late one."""

SQL = """
SELECT r.content AS key, d.actor AS client, NULL AS how
FROM (SELECT actor, off,
             max(off) OVER (PARTITION BY actor, session ORDER BY row
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
      FROM dl WHERE shown AND off IS NOT NULL) d
JOIN store r ON r.id = d.off
WHERE d.off < d.before
"""
