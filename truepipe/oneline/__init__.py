"""One-line updates: a rep types `acme renewal 48k close mar 14 proposal next: send SOW friday`,
sees the changes it means, and confirms. parse.py reads the line, services.py previews and applies."""
