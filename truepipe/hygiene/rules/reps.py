"""Rules about a rep's day: the missed daily update."""
