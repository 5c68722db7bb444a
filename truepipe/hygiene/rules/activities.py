"""Rules about activities: logging lag."""
