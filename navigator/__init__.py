"""Navigator: a Telegram support bot."""
