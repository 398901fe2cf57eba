"""The local forge: pull requests and issues over the branches of a local repository, so the whole loop runs on a
laptop with no forge account; its events go through the same webhook queue as GitHub's and GitLab's."""
