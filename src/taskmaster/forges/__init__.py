"""Forges: GitHub and GitLab webhooks in (verify, parse into ForgeEvent), statuses, check runs, comments, PRs and issues out."""
