#!/usr/bin/env python
"""Development entry point; installed users run `truepipe` instead."""

from truepipe.cli import main

if __name__ == "__main__":
    main()
