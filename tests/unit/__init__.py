"""Unit tests: one module or provider at a time, without a host's threads where they can."""
