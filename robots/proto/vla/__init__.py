"""Generated protobuf packages (see robots/proto/generate.py)."""
