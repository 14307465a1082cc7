"""The fleet: this process's model registry, every serving process's heartbeats, and the wake-up that tells the
others a target changed."""
