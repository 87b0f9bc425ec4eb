"""The hub's side of the gateway API: HTTP client, outbox sender, push channel."""
