"""Projects: the repositories Taskmaster works on."""
