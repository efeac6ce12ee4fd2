"""monodemo: the workspace tour behind `uv run demo`."""
