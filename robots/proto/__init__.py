"""The vla.v1 wire protocol: `vla/v1/policy.proto` and its generated Python code.

Regenerate with `python -m robots.proto.generate` after editing the .proto file.
"""
