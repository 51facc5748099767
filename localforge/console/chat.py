"""`localforge run`: chat with a model as `ollama run` does.

With a PROMPT, or text on stdin, it answers once and exits (stdin comes first, then the prompt),
so it works in pipes. Otherwise it is an interactive session that keeps the conversation:
`\"\"\"` starts and ends multi-line input, `/`-commands change the session, Ctrl-C stops the answer
being written (not the session), and Ctrl-D or `/bye` ends it. A model that is missing is pulled
first. With `auto`, the model that answered is named on stderr before each answer.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any

from localforge.console import client, show
from localforge.console.client import HOST_HELP, Failed
from localforge.console.models import pull
from localforge.errors import BadRequest
from localforge.options import KNOWN, parse_modelfile_parameters
from localforge.route.auto import preset_of

HELP = """Available Commands:
  /set parameter NAME VALUE   Set a parameter (temperature, num_ctx, stop, ...)
  /set system TEXT            Set the system message
  /set verbose | quiet        Show or hide timings after each answer
  /set format json | /set noformat
  /show info | system | parameters | template | license | modelfile
  /load MODEL                 Load a model (the conversation starts over)
  /clear                      Clear the session context
  /bye                        Exit
  /?, /help                   This help

Use \"\"\" to begin a multi-line message."""


@dataclass(slots=True)
class Session:
    model: str
    verbose: bool = False
    keep_alive: str | None = None
    format: str | None = None
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)

    def request(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        body: dict[str, Any] = {"model": self.model, "messages": system + messages, "stream": True}
        for key, value in [("options", self.options or None), ("keep_alive", self.keep_alive),
                           ("format", self.format)]:
            if value is not None:
                body[key] = value
        return body


# the timings of `ollama run --verbose`
def go_duration(ns: int) -> str:
    """Go's time.Duration.String, which is what Ollama prints."""
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1000:g}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:g}ms"
    seconds = ns / 1e9
    minutes, rest = divmod(seconds, 60)
    if minutes:
        return f"{int(minutes)}m{rest:g}s"
    return f"{seconds:g}s"


def timings(final: dict[str, Any]) -> str:
    lines = [f"total duration:       {go_duration(final.get('total_duration', 0))}",
             f"load duration:        {go_duration(final.get('load_duration', 0))}"]
    for label, count, ns in [("prompt eval", "prompt_eval_count", "prompt_eval_duration"),
                             ("eval", "eval_count", "eval_duration")]:
        n, took = final.get(count, 0), final.get(ns, 0)
        lines.append(f"{label + ' count:':<22}{n} token(s)")
        lines.append(f"{label + ' duration:':<22}{go_duration(took)}")
        if took:
            lines.append(f"{label + ' rate:':<22}{n / (took / 1e9):.2f} tokens/s")
    return "\n".join(lines)


# answering
def answer(args: argparse.Namespace, session: Session, messages: list[dict[str, str]]) -> str | None:
    """Stream one answer to stdout; None when Ctrl-C stopped it."""
    text: list[str] = []
    final: dict[str, Any] = {}
    try:
        with client.stream(args, "/api/chat", session.request(messages)) as (response, items):
            if preset_of(session.model) is not None:
                print(f"[{session.model} → {response.headers.get('x-localforge-model', '?')}]",
                      file=sys.stderr, flush=True)
            for item in items:
                piece = (item.get("message") or {}).get("content") or ""
                if piece:
                    text.append(piece)
                    sys.stdout.write(piece)
                    sys.stdout.flush()
                if item.get("done"):
                    final = item
    except KeyboardInterrupt:
        print(file=sys.stdout, flush=True)
        return None
    print(flush=True)
    if session.verbose:
        print(timings(final), file=sys.stderr, flush=True)
    return "".join(text)


def prepare(args: argparse.Namespace, model: str, keep_alive: str | None) -> None:
    """Pull the model if it is missing, then load it, as `ollama run` does before the prompt."""
    if preset_of(model) is None:
        try:
            client.call(args, "POST", "/api/show", {"model": model})
        except Failed as exc:
            if exc.status != 404:
                raise
            pull(args, model)
    body: dict[str, Any] = {"model": model, "messages": [], "stream": False}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    client.call(args, "POST", "/api/chat", body, timeout=None)


# the interactive session
def read_message(prompt: str) -> str:
    """One input: a line, or everything between a triple quote and the next one."""
    line = input(prompt)
    if '"""' not in line:
        return line
    head, _, tail = line.partition('"""')
    if '"""' in tail:  # opened and closed on one line
        return head + tail.replace('"""', "", 1)
    parts = [head + tail]
    while True:
        before, closed, after = input("... ").partition('"""')
        parts.append(before + after)
        if closed:
            break
    if not parts[0].strip():
        parts.pop(0)
    if parts and not parts[-1].strip():
        parts.pop()
    return "\n".join(parts)


def _set(session: Session, words: list[str], rest: str) -> None:
    what = words[1] if len(words) > 1 else ""
    if what == "parameter" and len(words) >= 4:
        name, values = words[2], words[3:]
        if name not in KNOWN:
            print(f"Unknown parameter '{name}'")
            return
        try:
            parsed = parse_modelfile_parameters({name: values if name == "stop" else values[0]})
        except BadRequest as exc:
            print(f"Couldn't set parameter: {exc.message}")
            return
        session.options.update(parsed)
        print(f"Set parameter '{name}' to '{', '.join(values)}'")
    elif what == "system" and rest.split(None, 1)[1:] and len(words) > 2:
        session.system = rest.split(None, 1)[1].strip().strip('"')
        print("Set system message.")
    elif what in ("verbose", "quiet"):
        session.verbose = what == "verbose"
        print(f"Set '{what}' mode.")
    elif what == "format" and words[2:] == ["json"]:
        session.format = "json"
        print("Set format to 'json' mode.")
    elif what == "noformat":
        session.format = None
        print("Disabled format.")
    else:
        print("Usage: /set parameter NAME VALUE | /set system TEXT | /set verbose | /set quiet | "
              "/set format json | /set noformat")


def _show(args: argparse.Namespace, session: Session, what: str) -> None:
    if preset_of(session.model) is not None and what != "info":
        print(f"'{session.model}' chooses a model per message; /show info lists its candidates")
        return
    info = client.call(args, "POST", "/api/show", {"model": session.model})
    fields = {"system": session.system or info.get("system"), "parameters": info.get("parameters"),
              "template": info.get("template"), "license": info.get("license"),
              "modelfile": info.get("modelfile")}
    if what == "info":
        print(show.describe(info))
    elif what in fields:
        print(fields[what] or f"No {what} was specified for this model.")
    else:
        print("Usage: /show info | system | parameters | template | license | modelfile")


def command(args: argparse.Namespace, session: Session, text: str) -> bool:
    """Run a /-command; False when the session ends."""
    words = text.split()
    verb = words[0].lower()
    if verb in ("/bye", "/exit"):
        return False
    if verb in ("/?", "/help"):
        print(HELP)
    elif verb == "/clear":
        session.messages.clear()
        print("Cleared session context")
    elif verb == "/set":
        _set(session, words, text[len(words[0]):].strip())
    elif verb == "/show":
        _show(args, session, words[1] if len(words) > 1 else "")
    elif verb == "/load" and len(words) == 2:
        print(f"Loading model '{words[1]}'")
        try:
            prepare(args, words[1], session.keep_alive)
        except Failed as exc:
            print(f"Error: {exc.message}")
            return True
        session.model = words[1]
        session.messages.clear()
    else:
        print(f"Unknown command '{words[0]}'. Type /? for help")
    return True


def interactive(args: argparse.Namespace, session: Session) -> int:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    while True:
        try:
            text = read_message(">>> ")
        except KeyboardInterrupt:
            print("\nUse Ctrl + d or /bye to exit.")
            continue
        except EOFError:
            print()
            return 0
        if text.startswith("/"):
            try:
                if not command(args, session, text):
                    return 0
            except Failed as exc:  # the server went away or refused: the session goes on
                print(f"Error: {exc.message}")
            continue
        if not text.strip():
            continue
        turn = [*session.messages, {"role": "user", "content": text}]
        try:
            reply = answer(args, session, turn)
        except Failed as exc:
            print(f"Error: {exc.message}")
            continue
        if reply is not None:  # an answer stopped with Ctrl-C is not kept
            session.messages[:] = [*turn, {"role": "assistant", "content": reply}]
        print()


def cmd_run(args: argparse.Namespace) -> int:
    session = Session(args.model, verbose=args.verbose, keep_alive=args.keepalive, format=args.format)
    prompt = " ".join(args.prompt)
    piped = not sys.stdin.isatty()
    if piped:
        prompt = " ".join(p for p in (sys.stdin.read(), prompt) if p)
    prepare(args, session.model, session.keep_alive)
    if prompt or piped:
        if not prompt.strip():
            raise Failed("nothing to answer: the prompt and stdin are empty")
        return 0 if answer(args, session, [{"role": "user", "content": prompt}]) is not None else 130
    return interactive(args, session)


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run", help="chat with a model, or answer one prompt", description=(
            "Chat with a model in the terminal, or answer PROMPT (and any text on stdin) once and "
            "exit. The model is pulled first when it is missing. Interactive commands: /set, /show, "
            "/load, /clear, /bye, /? (\"\"\" for multi-line input; Ctrl-C stops an answer)."))
    p.add_argument("model", help="model name, or auto / auto:<preset> to let LocalForge choose")
    p.add_argument("prompt", nargs="*", help="answer this once and exit")
    p.add_argument("--verbose", action="store_true", help="print timings after each answer")
    p.add_argument("--keepalive", help="how long to keep the model loaded (e.g. 5m, 1h)")
    p.add_argument("--format", choices=["json"], help="answer in JSON")
    p.add_argument("--host", help=HOST_HELP)
    p.set_defaults(func=cmd_run)
