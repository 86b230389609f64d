"""Robot-side code: robot specs, wire protocol, safety. Imports numpy only (no torch)."""
