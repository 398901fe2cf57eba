"""Workspaces: the git mirror cache, per-attempt checkouts, the bubblewrap sandbox and clean-up.

`git_cache.MirrorCache` (ensure, checkout, remove, evict), `sandbox.run(SandboxSpec) -> SandboxResult`,
`cleanup.remove_tree` / `cleanup.remove_older_than`; failures to prepare a workspace raise `errors.WorkspaceError`.
"""
