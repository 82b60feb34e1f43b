"""Model components: one loader for SD v1.4 + CLIP and for our mini zoo (same classes, same code path)."""
