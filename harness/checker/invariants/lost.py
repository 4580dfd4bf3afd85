"""lost: sent, never stored, never rejected (nor acked); `how` says silent or given_up.

A weak level that gives up still lost the message; a give-up that was in fact stored
is not lost.
"""

SQL = """
SELECT content AS key, NULL AS client,
       CASE WHEN given_up THEN 'given_up' ELSE 'silent' END AS how
FROM messages
WHERE NOT acked AND NOT rejected AND copies = 0
"""
