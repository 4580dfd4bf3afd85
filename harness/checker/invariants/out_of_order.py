"""out_of_order: a show below an earlier show of the same session; names the late one.

Two steps, because a run is nearly always in order: a cheap pass compares each show
with the one before it to find the sessions that went backwards, and only those get
the running maximum that names every late show (1, 5, 3, 4 names 3 and 4).
"""

SQL = """
SELECT r.content AS key, d.actor AS client, NULL AS how
FROM (SELECT actor, off,
             max(off) OVER (PARTITION BY actor, session ORDER BY row
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
      FROM dl SEMI JOIN (
        SELECT DISTINCT actor, session FROM (
          SELECT actor, session, off,
                 lag(off) OVER (PARTITION BY actor, session ORDER BY row) AS prev
          FROM dl WHERE shown AND off IS NOT NULL)
        WHERE off < prev) bad USING (actor, session)
      WHERE shown AND off IS NOT NULL) d
JOIN store r ON r.id = d.off
WHERE d.off < d.before
"""
