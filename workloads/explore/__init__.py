"""Design-space exploration: precision x hardware sweeps and where their points run."""
