"""A serving process's life: its start-up on the fleet's targets, then the watcher that keeps it on them."""
