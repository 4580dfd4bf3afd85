"""lost_acked: the server acknowledged the message as stored, and no run row holds it."""

SQL = """
SELECT content AS key, NULL AS client, NULL AS how FROM messages
WHERE acked AND copies = 0
"""
