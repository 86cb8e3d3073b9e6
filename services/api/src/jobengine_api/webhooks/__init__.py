"""Webhooks: per-tenant subscriptions and per-job callback URLs, signed per Standard Webhooks, delivered at least
once by the API processes (docs/guarantees.md, "Webhooks"; docs/security.md)."""
