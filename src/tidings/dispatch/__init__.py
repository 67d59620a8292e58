"""The outbox and the dispatcher: claims, worker, rate limits, delivery receipts."""
