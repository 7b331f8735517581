"""The performance harness (DESIGN §7, issue 10): ``python -m bench``."""
