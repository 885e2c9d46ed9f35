"""closures package."""
