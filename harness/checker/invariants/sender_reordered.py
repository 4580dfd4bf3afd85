"""sender_reordered: a message stored below one its sender sent earlier.

Only at a level that promises order (`ordered` is set by the caller). A message's
position is its first row; the message named is the one stored too early, as
`out_of_order` names the one shown too late. Two steps, as there: a cheap pass
compares each message with its sender's previous one to find the senders that went
backwards, and only those get the running maximum that names every early one.
"""

SQL = """
SELECT content AS key, NULL AS client, NULL AS how FROM (
  SELECT content, first_id,
         max(first_id) OVER (PARTITION BY sender ORDER BY row
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
  FROM messages SEMI JOIN (
    SELECT DISTINCT sender FROM (
      SELECT sender, first_id, lag(first_id) OVER (PARTITION BY sender ORDER BY row) AS prev
      FROM messages WHERE first_id IS NOT NULL AND getvariable('ordered'))
    WHERE first_id < prev) bad USING (sender)
  WHERE first_id IS NOT NULL AND getvariable('ordered'))
WHERE first_id < before
"""
