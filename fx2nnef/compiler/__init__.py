"""The compiler: capture (frontend), the pass interface and manager, the default pipeline."""
