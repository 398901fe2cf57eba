"""Templates: prompts, workflows and configurations, versioned in the `templates` table."""
