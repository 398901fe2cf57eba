"""One agent session: its PTY, its terminal, and the conversation read from the screen.

Status is `stable` when the screen has not changed for the stability window and the agent shows its input prompt
or asks a question (a permission menu: then `waiting_for` names it and its choices), `running` otherwise.
The reply to a user message is what is new on the screen (scrollback included) since the message was sent,
cleaned up by the agent type's rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from taskmaster.agents.agentapi.pty import PtyProcess
from taskmaster.agents.agentapi.rules import rules_for
from taskmaster.agents.agentapi.rules.common import WHITESPACE, AgentRules, Question, trim_empty_lines
from taskmaster.agents.agentapi.screen import Mark, Terminal
from taskmaster.core.errors import Conflict, InvalidInput, TaskmasterError

Role = Literal["agent", "user"]
Status = Literal["running", "stable"]

REFRESH_INTERVAL = 0.025  # the reference's snapshot interval: replies update at most 40 times a second
ECHO_WAIT = 2.0
ENTER_RETRY = 3.0
REACT_TIMEOUT = 15.0
SUBSCRIBER_BUFFER = 1024


class SendError(TaskmasterError):
    """A message could not be delivered; `detail` reads like the reference server's."""

    code = "send_failed"
    title = "Internal Server Error"


class EmptyMessage(InvalidInput):
    """A user message with nothing but white space."""

    code = "empty_message"


class AgentBusy(Conflict):
    """A user message while the agent is not waiting for input (the reference answers 500; a refusal is a 409)."""

    code = "agent_busy"


class AgentGone(Conflict):
    """A message for an agent that has exited."""

    code = "agent_exited"


@dataclass
class Message:
    id: int
    role: Role
    content: str
    time: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "content": self.content, "time": format_time(self.time)}

    def as_event(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "message": self.content, "time": format_time(self.time)}


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as Go prints times."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    name: Literal["message_update", "status_change", "agent_error", "waiting_for"]
    data: dict[str, Any]


@dataclass
class SessionConfig:
    """What to run and how to read it. `stability_window` is the quiet time (seconds) before `stable`."""

    argv: Sequence[str]
    agent_type: str = "custom"
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    columns: int = 80
    lines: int = 1000
    prompt_regex: str | None = None
    stability_window: float = 2.0
    queue: bool = False
    term: str = "vt100"


def _screen_diff(old: Sequence[str], new: Sequence[str]) -> str:
    """Everything from the first line that was not on the old screen; the reference's rule, over scrollback too.

    `new` starts where `old` started (lines scrolled off since come first), so the rows both share at the top are
    the earlier conversation, left as it was. Only the old rows below them count as seen: an agent that prints
    inline (Claude Code) and answers the same twice would otherwise have its new answer taken for the old one.
    """
    common = 0
    for before, after in zip(old, new, strict=False):
        if before != after:
            break
        common += 1
    seen = set(old[common:])
    start = len(new)
    for index in range(common, len(new)):
        if new[index] not in seen:
            start = index
            break
    return trim_empty_lines("\n".join(new[start:]))


class Conversation:
    """The conversation with one agent. Lifecycle: `start()` on a running loop, then `close()`.

    All methods run on the loop that started it. `send_user` serialises sends; `send_raw` may run at any time.
    Subscribers get a replay of every message and the status, then live events; a subscriber that falls
    `SUBSCRIBER_BUFFER` events behind is dropped (its queue receives None).
    """

    def __init__(self, config: SessionConfig, *, base_env: dict[str, str] | None = None) -> None:
        self.config = config
        self.agent_type = config.agent_type
        self.rules: AgentRules = rules_for(config.agent_type, config.prompt_regex)
        self.terminal = Terminal(config.columns, config.lines)
        self.messages: list[Message] = [Message(0, "agent", "", _now())]
        self.status: Status = "running"
        # The question the agent waits on while stable, if it shows one instead of its input prompt.
        self.waiting_for: Question | None = None
        self.exit_code: int | None = None
        self.started_at = _now()
        self._base_env = base_env
        self._process: PtyProcess | None = None
        self._base: Mark = Mark(0, ())
        self._last_user_input = ""
        self._last_change = time.monotonic()
        self._sending = False
        self._send_lock = asyncio.Lock()
        self._pending: list[str] = []
        self._stable_timer: asyncio.TimerHandle | None = None
        self._refresh_timer: asyncio.TimerHandle | None = None
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._listeners: list[Callable[[Conversation], None]] = []
        self._version = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue_task: asyncio.Task[None] | None = None

    # lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        env = dict(self._base_env or {})
        env["TERM"] = self.config.term
        env.update(self.config.env)
        process = PtyProcess.spawn(
            self.config.argv, columns=self.config.columns, lines=self.config.lines, cwd=self.config.cwd, env=env
        )
        process.on_output = self._on_output
        process.on_exit = self._on_exit
        self._process = process
        self.terminal.on_response(self._answer_terminal_query)
        self._last_change = time.monotonic()
        self._schedule_stability_check()

    async def close(self, grace: float = 3.0) -> None:
        """End the agent's process group and disconnect subscribers."""
        for timer in (self._stable_timer, self._refresh_timer):
            if timer is not None:
                timer.cancel()
        if self._queue_task is not None:
            self._queue_task.cancel()
        if self._process is not None:
            await self._process.terminate(grace)
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()

    async def wait_exit(self) -> int:
        """The agent's exit code, once it has exited."""
        assert self._process is not None, "start() first"
        return await self._process.wait()

    @property
    def alive(self) -> bool:
        return self._process is not None and self.exit_code is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def add_listener(self, listener: Callable[[Conversation], None]) -> None:
        """Called after every message change (for persistence); must not block."""
        self._listeners.append(listener)

    def restore(self, messages: list[Message]) -> None:
        """Put a saved transcript before this run's messages (used after a restart)."""
        self.messages = [*messages, Message(len(messages), "agent", "", _now())]
        for index, message in enumerate(self.messages):
            message.id = index

    # terminal input

    def _on_output(self, data: bytes) -> None:
        if not self.terminal.feed(data):
            return
        self._version += 1
        self._last_change = time.monotonic()
        self._wake.set()
        if self.status == "stable":
            self._set_status("running")
        self._schedule_stability_check()
        if self._refresh_timer is None and self._loop is not None:
            self._refresh_timer = self._loop.call_later(REFRESH_INTERVAL, self._refresh_tick)

    def _answer_terminal_query(self, data: bytes) -> None:
        if self._process is not None and self.alive:
            with contextlib.suppress(OSError):
                self._process.write(data)

    def _on_exit(self, code: int) -> None:
        self.exit_code = code
        self._refresh()
        self._emit(
            Event(
                "agent_error",
                {"level": "error", "message": f"agent exited with code {code}", "time": format_time(_now())},
            )
        )
        self._notify_listeners()

    def _refresh_tick(self) -> None:
        self._refresh_timer = None
        self._refresh()

    def _schedule_stability_check(self) -> None:
        self._schedule_stability_check_in(max(self._last_change + self.config.stability_window - time.monotonic(), 0))

    def _schedule_stability_check_in(self, delay: float) -> None:
        if self._loop is None:
            return
        if self._stable_timer is not None:
            self._stable_timer.cancel()
        self._stable_timer = self._loop.call_later(delay, self._stability_check)

    def _stability_check(self) -> None:
        self._stable_timer = None
        if self._sending:
            return
        quiet_for = time.monotonic() - self._last_change
        if quiet_for < self.config.stability_window:
            self._schedule_stability_check()
            return
        screen = self.terminal.text()
        prompt = self.rules.prompt_visible(screen)
        question = None if prompt else self.rules.question(screen)
        # A question outranks a busy title: Codex spins its title while it waits for an approval.
        if question is None and self.rules.title_busy(self.terminal.title):
            self._schedule_stability_check_in(self.config.stability_window)
            return
        if question is not None or prompt:
            self._refresh()
            self._set_waiting(question)
            self._set_status("stable")
            if question is None and self._pending and self._queue_task is None and self._loop is not None:
                self._queue_task = self._loop.create_task(self._deliver_pending())

    def _set_waiting(self, question: Question | None) -> None:
        if question != self.waiting_for:
            self.waiting_for = question
            self._emit(Event("waiting_for", {"waiting_for": question.as_json() if question else None}))

    def _set_status(self, status: Status) -> None:
        if status == "running":
            self._set_waiting(None)
        if status != self.status:
            self.status = status
            self._wake.set()
            self._emit(Event("status_change", {"status": status, "agent_type": self.agent_type}))

    def _refresh(self) -> None:
        """Recompute the agent's current reply from the screen (not while a message is being typed)."""
        if self._sending:
            return
        old, new = self.terminal.since(self._base)
        content = self.rules.format_reply(_screen_diff(old, new), self._last_user_input)
        self._update_agent_message(content)

    def _update_agent_message(self, content: str) -> None:
        last = self.messages[-1]
        if last.role == "agent":
            if last.content == content:
                return
            last.content = content
            last.time = _now()
        else:
            last = Message(len(self.messages), "agent", content, _now())
            self.messages.append(last)
        self._emit(Event("message_update", last.as_event()))
        self._notify_listeners()

    # sending

    def check_can_send(self, content: str) -> str:
        text = content.strip(WHITESPACE)
        if not text:
            raise EmptyMessage("failed to send message: message must not be empty")
        if not self.alive:
            raise AgentGone("failed to send message: the agent has exited")
        return text

    async def send_user(self, content: str) -> None:
        """Type `content` as a bracketed paste and press Enter; returns once the agent reacts.

        Raises EmptyMessage for white space only, AgentGone when the agent has exited, AgentBusy when it is not
        waiting for input (unless queueing is on: the message is then delivered when the agent is next stable), and
        SendError when the agent does not react.
        """
        text = self.check_can_send(content)
        busy = self.status != "stable" or self.waiting_for is not None or self._send_lock.locked()
        if self.config.queue and (busy or self._pending):
            self._pending.append(text)
            return
        if self.waiting_for is not None:
            raise AgentBusy(
                f"failed to send message: the agent asks {self.waiting_for.question!r}; answer it with a raw message"
            )
        if self.status != "stable" or self._send_lock.locked():
            raise AgentBusy("failed to send message: message can only be sent when the agent is waiting for user input")
        async with self._send_lock:
            await self._deliver(text)

    async def _deliver_pending(self) -> None:
        try:
            while self._pending and self.status == "stable" and self.waiting_for is None and self.alive:
                text = self._pending.pop(0)
                async with self._send_lock:
                    await self._deliver(text)
                await self._wait_stable()
        finally:
            self._queue_task = None

    async def _wait_stable(self) -> None:
        await self._wait_for(lambda: not self.alive or self.status == "stable", None)

    async def _wait_for(self, predicate: Callable[[], bool], limit: float | None) -> bool:
        """Wait until `predicate()` holds (checked on every screen change, exit and status change, and every 50 ms)."""
        deadline = None if limit is None else time.monotonic() + limit
        while not predicate():
            step = 0.05
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                step = min(step, remaining)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), step)
        return True

    async def _deliver(self, text: str) -> None:
        process = self._process
        assert process is not None
        sent_at = _now()
        self._refresh()  # the previous reply, as final as the screen shows it
        mark = self.terminal.mark()
        self._sending = True
        self._set_status("running")
        try:
            # Typing a character and deleting it first stops Claude Code from echoing the paste start sequence.
            process.write(b"x\b\x1b[200~" + text.encode() + b"\x1b[201~")
            await self._wait_echo()
            version = self._version
            last_enter = 0.0
            deadline = time.monotonic() + REACT_TIMEOUT
            while self._version == version:
                now = time.monotonic()
                if now > deadline:
                    raise SendError("failed to send message: failed to wait for processing to start: timeout")
                if not self.alive:
                    raise AgentGone("failed to send message: the agent has exited")
                # Enter again only after a pause: some agents (aider) act on every Enter they get.
                if now - last_enter >= ENTER_RETRY:
                    process.write(b"\r")
                    last_enter = now
                await self._wait_for(lambda: self._version != version or not self.alive, 0.05)
        except OSError as exc:
            raise SendError(f"failed to send message: {exc}") from None
        finally:
            self._sending = False
            self._last_change = time.monotonic()
            self._schedule_stability_check()
        self._base = mark
        self._last_user_input = text
        self.messages.append(Message(len(self.messages), "user", text, sent_at))
        self._emit(Event("message_update", self.messages[-1].as_event()))
        self._notify_listeners()
        self._refresh()

    async def _wait_echo(self) -> None:
        """Wait for the pasted text to show and the screen to settle (agents that do not echo get ECHO_WAIT)."""
        settle = min(1.0, self.config.stability_window / 2)
        version = self._version
        if not await self._wait_for(lambda: self._version != version or not self.alive, ECHO_WAIT):
            return
        await self._wait_for(lambda: time.monotonic() - self._last_change >= settle or not self.alive, REACT_TIMEOUT)

    def send_raw(self, content: str) -> None:
        """Write `content` to the terminal verbatim (keys, escape sequences); not recorded."""
        if self._process is None or not self.alive:
            raise AgentGone("failed to send message: the agent has exited")
        try:
            self._process.write(content.encode())
        except OSError as exc:
            raise SendError(f"failed to send message: {exc}") from None
        if self.waiting_for is not None:
            # Keys for a question: the answer is on its way, so a client polling right after must not see the
            # question as still open; if the keys did not answer it, it is found again after the window.
            self._last_change = time.monotonic()
            self._set_status("running")
            self._schedule_stability_check()

    # events

    def subscribe(self) -> tuple[list[Event], asyncio.Queue[Event | None]]:
        """The events that rebuild the current state, and a queue of the events after them."""
        replay = [Event("message_update", message.as_event()) for message in self.messages]
        replay.append(Event("status_change", {"status": self.status, "agent_type": self.agent_type}))
        if self.waiting_for is not None:
            replay.append(Event("waiting_for", {"waiting_for": self.waiting_for.as_json()}))
        queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_BUFFER + 1)
        self._subscribers.add(queue)
        return replay, queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)

    def _emit(self, event: Event) -> None:
        for queue in list(self._subscribers):
            if queue.qsize() >= SUBSCRIBER_BUFFER:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)

    def _notify_listeners(self) -> None:
        for listener in self._listeners:
            listener(self)

    def describe(self) -> dict[str, Any]:
        return {
            "agent_type": self.agent_type,
            "status": self.status,
            "waiting_for": self.waiting_for.as_json() if self.waiting_for else None,
            "alive": self.alive,
            "exit_code": self.exit_code,
            "pid": self.pid,
            "command": list(self.config.argv),
            "cwd": self.config.cwd,
            "started_at": format_time(self.started_at),
            "messages": len(self.messages),
        }


def _now() -> datetime:
    return datetime.now(UTC)
