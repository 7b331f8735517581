"""The performance harness (docs/performance.md, issue 10): ``python -m bench``."""
