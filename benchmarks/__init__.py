"""relayllm benchmarks: ratios measured in one run so machine noise cancels.

Run ``python -m benchmarks --json results.json``.
"""
