"""Fake GitHub and GitLab REST APIs on loopback for the forge client tests."""
