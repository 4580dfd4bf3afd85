"""out_of_order: a show below an earlier show of the same session; names the late one.

Two steps, because a run is nearly always in order: a cheap pass compares each show
with the one before it to find the sessions that went backwards, and only those get
the running maximum that names every late show (1, 5, 3, 4 names 3 and 4).
"""

SQL = """
SELECT r.content AS key, s.actor AS client, NULL AS how
FROM (SELECT sid, off,
             max(off) OVER (PARTITION BY sid ORDER BY row
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
      FROM dl SEMI JOIN (
        SELECT DISTINCT sid FROM (
          SELECT sid, off, lag(off) OVER (PARTITION BY sid ORDER BY row) AS prev
          FROM dl WHERE shown AND off IS NOT NULL)
        WHERE off < prev) bad USING (sid)
      WHERE shown AND off IS NOT NULL) d
JOIN spans s USING (sid) JOIN store r ON r.id = d.off
WHERE d.off < d.before
"""
