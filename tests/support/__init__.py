"""What tests share beyond fixtures: waiting (`eventually`), real git repositories, databases, loopback servers,
processes, row factories, fakes of the engine's adapters (a scripted executor) and scripted terminal agents."""

from tests.support.agents import install_agent
from tests.support.databases import PostgresDatabase, make_settings, postgres_available, require_postgres, settings_on
from tests.support.eventually import eventually, eventually_sync
from tests.support.factories import make_project
from tests.support.fakes import FakeExecutor, FakeSites, Scripted
from tests.support.git import GIT_ENV, commit, git, make_pipeline_repo, make_repo
from tests.support.logs import LogCapture
from tests.support.net import TcpProxy, free_port, live_server
from tests.support.processes import OutputCollector, processes_with, wait_for_process

__all__ = [
    "GIT_ENV",
    "FakeExecutor",
    "FakeSites",
    "LogCapture",
    "OutputCollector",
    "PostgresDatabase",
    "Scripted",
    "TcpProxy",
    "commit",
    "eventually",
    "eventually_sync",
    "free_port",
    "git",
    "install_agent",
    "live_server",
    "make_pipeline_repo",
    "make_project",
    "make_repo",
    "make_settings",
    "postgres_available",
    "processes_with",
    "require_postgres",
    "settings_on",
    "wait_for_process",
]
