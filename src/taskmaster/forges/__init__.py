"""Forges: GitHub and GitLab webhooks in (verify, parse into ForgeEvent); statuses, checks, comments, PRs out."""
