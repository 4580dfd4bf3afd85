"""duplicated_stored: one message in more than one run row (a retry stored twice)."""

SQL = """
SELECT content AS key, NULL AS client, NULL AS how FROM messages WHERE copies > 1
"""
