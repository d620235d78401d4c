"""The audit trail: git history with trailers, the chain from request to confirmed change,
and the JSON Lines export. Webhooks (an outbox) are not built yet."""
