"""``homepot-ai ask`` and ``homepot-ai chat``: the agent in a terminal.

Both go through ``agent.runtime.Agent`` (one loop for streaming and not). Write actions
(acknowledge / mute / resolve an alert) pause the turn: ``chat`` and a TTY ``ask`` ask y/N;
a non-interactive ``ask`` prints the pending action and the command that confirms it
(``--thread ID --confirm``), or confirms up front with ``--yes``. Imports stay inside the
commands so that ``homepot-ai --help`` does not load LangGraph.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from agent.runtime import Agent, AgentReply

HELP_TEXT = """Commands:
  /help   this help
  /new    start a new conversation (new thread id)
  /quit   leave (Ctrl-D works too)
Ask about the fleet, e.g. "how many devices are offline?", "average CPU at <site> yesterday",
"which devices need maintenance in the next 30 days?", "show open alerts for <device>"."""


def model_option(fn: Any) -> Any:
    return click.option("--model", "model", default=None, metavar="offline|ollama[:NAME]|auto",
                        help="Model provider (default: HOMEPOT_AI_MODEL, i.e. auto).")(fn)


def _open_agent(model: str | None, surface: str) -> "Agent":
    from agent.providers import ProviderError
    from agent.runtime import Agent
    from app.errors import UserError

    try:
        return Agent.from_settings(model=model, surface=surface)
    except ProviderError as exc:
        raise UserError(str(exc)) from exc


def _pending_text(reply: "AgentReply") -> str:
    lines = ["Waiting for your confirmation:"]
    for p in reply.pending:
        lines.append(f"  {p.get('question', p)}")
    lines.append(f"Run `homepot-ai ask --thread {reply.thread_id} --confirm` to apply it, "
                 f"or `homepot-ai ask --thread {reply.thread_id} --reject` to cancel.")
    return "\n".join(lines)


def _merge(first: "AgentReply", later: "AgentReply") -> "AgentReply":
    """One reply for a turn that paused for confirmation: the calls of both halves."""
    later.tool_calls = [*first.tool_calls, *[c for c in later.tool_calls if c not in first.tool_calls]]
    later.seconds = round(first.seconds + later.seconds, 3)
    return later


@click.command()
@click.argument("question", required=False)
@click.option("--json", "json_", is_flag=True, help="Print one JSON object (answer, model, tool_calls, seconds, thread_id).")
@click.option("--thread", "thread_id", default=None, help="Continue this conversation (thread id).")
@model_option
@click.option("--yes", "yes", is_flag=True, help="Confirm write actions (acknowledge, mute, resolve) without asking.")
@click.option("--confirm", "decision", flag_value="confirm", default=None,
              help="Apply the action waiting for confirmation on --thread.")
@click.option("--reject", "decision", flag_value="reject", help="Cancel the action waiting on --thread.")
def ask(question: str | None, json_: bool, thread_id: str | None, model: str | None, yes: bool,
        decision: str | None) -> None:
    """Ask the agent one question and print the answer.

    \b
    Examples:
      homepot-ai ask "how many devices are offline?"
      homepot-ai ask "average CPU at Camden yesterday" --json
      homepot-ai ask "resolve alert 12" --yes
      homepot-ai ask --thread 3f2a9c1d0e4b --confirm
    """
    from app.errors import UserError

    if decision and not thread_id:
        raise UserError("--confirm and --reject need --thread ID (the thread that is waiting).")
    if not decision and not (question and question.strip()):
        raise UserError('Ask a question, e.g. homepot-ai ask "how many devices are offline?"')
    agent = _open_agent(model, "cli")
    try:
        if agent.provider.notice and not json_:
            click.echo(agent.provider.notice, err=True)
        if decision:
            try:
                reply = agent.resume(thread_id, decision == "confirm")  # type: ignore[arg-type]
            except LookupError as exc:
                raise UserError(str(exc)) from exc
        else:
            reply = agent.ask(question or "", thread_id)
        while reply.pending:
            if yes:
                reply = _merge(reply, agent.resume(reply.thread_id, True))
            elif sys.stdin.isatty() and not json_:
                for p in reply.pending:
                    click.echo(p.get("question", str(p)))
                approved = click.confirm("Apply this change?", default=False)
                reply = _merge(reply, agent.resume(reply.thread_id, approved))
            else:
                break
        if json_:
            payload = reply.to_json()
            if reply.pending:
                payload["answer"] = _pending_text(reply)
            click.echo(json.dumps(payload, default=str))
        else:
            click.echo(_pending_text(reply) if reply.pending else reply.answer)
            if not thread_id:
                click.echo(f"(thread {reply.thread_id}; continue with --thread {reply.thread_id})", err=True)
    finally:
        agent.close()


@click.command()
@click.option("--thread", "thread_id", default=None, help="Continue this conversation (thread id).")
@model_option
def chat(thread_id: str | None, model: str | None) -> None:
    """Chat with the agent in the terminal (history, streamed answers, tool calls shown).

    \b
    Example:
      homepot-ai chat --model offline
    """
    agent = _open_agent(model, "chat")
    try:
        run_chat(agent, thread_id)
    finally:
        agent.close()


def _setup_readline(agent: "Agent") -> None:
    try:
        import readline
    except ImportError:  # Windows without pyreadline
        return
    import atexit

    path = agent.ctx.settings.data_dir / "chat_history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            readline.read_history_file(str(path))
        readline.set_history_length(1000)
        atexit.register(readline.write_history_file, str(path))
    except OSError:
        pass


def _render_turn(agent: "Agent", question: str | None, thread_id: str, resume: Any = None) -> "AgentReply":
    streamed = ""
    reply: AgentReply | None = None
    for kind, item in agent.stream(question, thread_id, resume=resume):
        if kind == "token":
            if not streamed:
                click.echo("ai> ", nl=False)
            streamed += item
            click.echo(item, nl=False)
        elif kind == "tool":
            if streamed:
                click.echo()
                streamed = ""
            click.secho(f"  · {item.get('one_liner', item.get('name'))} ({item.get('seconds', 0):.2f}s)", dim=True)
        else:
            reply = item
    assert reply is not None
    if reply.pending:
        if streamed:
            click.echo()
        return reply
    answer = reply.answer
    if streamed and answer.startswith(streamed):
        click.echo(answer[len(streamed):])
    else:
        if streamed:
            click.echo("\n(checked answer)")
        click.echo("ai> " + answer)
    return reply


def run_chat(agent: "Agent", thread_id: str | None = None) -> None:
    """The chat loop, separate from click so the demo can open it too."""
    from agent.runtime import new_thread_id

    _setup_readline(agent)
    thread = thread_id or new_thread_id()
    if agent.provider.notice:
        click.echo(agent.provider.notice, err=True)
    click.echo(f"HOMEPOT AI chat ({agent.provider.label}), thread {thread}. /help for commands, /quit to leave.")
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            return
        if line == "/help":
            click.echo(HELP_TEXT)
            continue
        if line == "/new":
            thread = new_thread_id()
            click.echo(f"New conversation, thread {thread}.")
            continue
        try:
            reply = _render_turn(agent, line, thread)
            while reply.pending:
                for p in reply.pending:
                    click.echo(p.get("question", str(p)))
                approved = click.confirm("Apply this change?", default=False)
                reply = _render_turn(agent, None, thread, resume=approved)
        except KeyboardInterrupt:
            click.echo("\n(interrupted)")
