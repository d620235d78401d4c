"""Storage: an asyncpg pool, SQL migrations, and one SQL module per aggregate.

No ORM. Each module (``tenants``, ``people``, ``appliances``, ``heartbeats``,
``audit``) holds the SQL of one aggregate as functions taking a connection
first and keyword arguments after; callers own the transaction.
"""
