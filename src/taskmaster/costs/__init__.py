"""What AI calls cost: prices, one record per call, and sums per pipeline, workflow run and project."""
