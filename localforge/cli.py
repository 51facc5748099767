"""The `localforge` command: serve, and talk to a running server as `ollama` does."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localforge import __version__
from localforge.config import DEFAULT_PORT
from localforge.console import show
from localforge.console.client import HOST_HELP
from localforge.console.client import call as _call
from localforge.console.show import table
from localforge.errors import LocalForgeError
from localforge.resources.budget import size
from localforge.resources.placement import Pools, processor

Command = Callable[[argparse.Namespace], int]


def cmd_serve(args: argparse.Namespace) -> int:
    from localforge import config
    from localforge.server import serve

    overrides = {"host": args.host, "port": args.port, "models_dir": args.models_dir,
                 "data_dir": args.data_dir}
    try:
        settings = config.load(args.config, overrides)
    except LocalForgeError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream request is noise
    return serve.run(settings, args.log_level)


def cmd_list(args: argparse.Namespace) -> int:
    models = _call(args, "GET", "/api/tags")["models"]
    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    rows += [[m["name"], m["digest"][:12], size(m["size"]), m["modified_at"][:19]] for m in models]
    print(table(rows))
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    models = _call(args, "GET", "/api/ps")["models"]
    rows = [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]]
    for m in models:
        where = processor(Pools(m["size_vram"], max(0, m["size"] - m["size_vram"])))
        rows.append([m["name"], m["digest"][:12], size(m["size"]), where,
                     str(m["context_length"]), m["expires_at"][:19]])
    print(table(rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    info = _call(args, "POST", "/api/show", {"model": args.model})
    print(info["modelfile"] if args.modelfile else show.describe(info))
    return 0


def registered_backends(pm: Any, settings: Any) -> dict[str, list[Any]]:
    """Each plugin's own register_backends, called alone, so the listing says who registered what."""
    found: dict[str, list[Any]] = {}
    for impl in pm.hook.register_backends.get_hookimpls():
        kwargs = {"register": found.setdefault(impl.plugin_name, []).append, "settings": settings}
        impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
    return found


def cmd_route(args: argparse.Namespace) -> int:
    plan = _call(args, "POST", "/api/route", {"model": args.model,
                                              "messages": [{"role": "user", "content": args.text}]})
    if args.json:
        print(json.dumps(plan, indent=2))
        return 0
    profile = plan["profile"]
    print(f"{plan['model']}  ({plan['reason']}; preset {plan['preset']})")
    print(f"  profile: task {profile['task']}, ~{profile['tokens']} tokens"
          + (f", sensitive: {', '.join(profile['sensitivity'])}" if profile["sensitive"] else ""))
    for model, why in plan["removed"].items():
        print(f"  removed {model}: {why}")
    rows = [["MODEL", "SCORE", "QUALITY", "PRIOR", "LINEAR", "MEMORY", "COST $", "COST", "LATENCY"]]
    for c in plan["candidates"]:
        p = c["parts"]
        rows.append([c["model"], f"{c['score']:.3f}", f"{p['quality']:.3f}", f"{p['prior']:.3f}",
                     f"{p['linear']:+.3f}", f"{p['memory']:+.3f}", f"{p['cost']:.5f}",
                     f"{p['cost_term']:+.3f}", f"{p['latency_term']:+.3f}"])
    print(table(rows))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from localforge import config
    from localforge.memory import forget

    try:
        settings = config.load(args.config, {"data_dir": args.data_dir})
    except LocalForgeError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 2
    return forget.run(settings.data_dir, None if args.all else args.before)


def cmd_plugins(args: argparse.Namespace) -> int:
    import anyio

    from localforge import config, plugins

    pm = plugins.make_manager()
    described = plugins.describe(pm)
    try:
        settings = config.load(args.config)
        backends = registered_backends(pm, settings)
    except LocalForgeError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 2
    for plugin in described:
        plugin["backends"] = []
        for backend in backends.get(plugin["name"], []):
            shown: dict[str, Any] = {"name": backend.name}
            if args.models:
                shown["models"] = sorted(card.name for card in backend.models())
            plugin["backends"].append(shown)
            anyio.run(backend.close)
    print(json.dumps(described, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localforge", description="A drop-in Ollama server that routes each request to the right model.")
    parser.add_argument("--version", action="version", version=f"localforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="start the server (Ollama API at /api, OpenAI API at /v1)",
                           description="Start the server. Settings come from defaults < --config < "
                           "LOCALFORGE_* and OLLAMA_HOST/OLLAMA_KEEP_ALIVE < these options.")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; OLLAMA_HOST is honoured)")
    serve.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument("--config", type=Path, help="TOML config file (also LOCALFORGE_CONFIG)")
    serve.add_argument("--models-dir", type=Path, help="where models live (default DATA_DIR/models)")
    serve.add_argument("--data-dir", type=Path, help="where the database lives (default ~/.localforge)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                       help="how much the server logs (default info)")
    serve.set_defaults(func=cmd_serve)

    for name, func, text in [("list", cmd_list, "list the models a running server offers"),
                             ("ps", cmd_ps, "list the models a running server has loaded")]:
        p = sub.add_parser(name, help=text, description=text.capitalize() + ".")
        p.add_argument("--host", help=HOST_HELP)
        p.set_defaults(func=func)

    show = sub.add_parser("show", help="show a model's details", description="Show a model's details.")
    show.add_argument("model", help="model name, e.g. smollm2:135m")
    show.add_argument("--modelfile", action="store_true", help="print the model's Modelfile")
    show.add_argument("--host", help=HOST_HELP)
    show.set_defaults(func=cmd_show)

    from localforge.console import chat, models

    chat.add_parser(sub)
    models.add_parsers(sub)

    plug = sub.add_parser("plugins", help="list installed plugins, their hooks and the backends they register",
                          description="List installed plugins, the hooks each implements and the "
                          "backends each registers with the given configuration.")
    plug.add_argument("--config", type=Path, help="TOML config file (also LOCALFORGE_CONFIG)")
    plug.add_argument("--models", action="store_true", help="also list each backend's models (asks upstreams)")
    plug.set_defaults(func=cmd_plugins)

    route = sub.add_parser("route", help="dry-run the auto model: which model a prompt would go to, and why",
                           description="Ask a running server where `auto` would send this prompt: its "
                           "profile, the policies that removed candidates, and each candidate's score "
                           "broken into its parts. Nothing is generated or recorded.")
    route.add_argument("text", help="the prompt")
    route.add_argument("--model", default="auto", help="auto or auto:<preset> (default auto)")
    route.add_argument("--json", action="store_true", help="print the whole dry run as JSON")
    route.add_argument("--host", help=HOST_HELP)
    route.set_defaults(func=cmd_route)

    from localforge.memory.forget import date

    forget = sub.add_parser("forget", help="wipe routed requests: their prompts' traces, outcomes and vectors",
                            description="Delete routed requests (hashes, embeddings, any stored prompt "
                            "text), their outcomes and their vectors from the data folder. The server "
                            "must be stopped. Request rows (times, models, token counts) are kept.")
    which = forget.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every routed request")
    which.add_argument("--before", type=date, metavar="DATE", help="those before DATE (YYYY-MM-DD, local time)")
    forget.add_argument("--config", type=Path, help="TOML config file (also LOCALFORGE_CONFIG)")
    forget.add_argument("--data-dir", type=Path, help="the data folder (default from the config, else ~/.localforge)")
    forget.set_defaults(func=cmd_forget)

    # each benchmark module adds its own subcommand to this group
    bench = sub.add_parser("bench", help="benchmarks that run the real code, no server needed",
                           description="Benchmarks that run the real code, no server needed.")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    from localforge.bench import replay_cli

    replay_cli.add_parser(benchmarks)
    from localforge.bench import scheduler as bench_scheduler

    bench_scheduler.add_parser(benchmarks)
    from localforge.bench import overhead as bench_overhead

    bench_overhead.add_parser(benchmarks)
    from localforge.bench import runners as bench_runners

    bench_runners.add_parser(benchmarks)
    from localforge.bench import throughput as bench_throughput

    bench_throughput.add_parser(benchmarks)
    from localforge.bench import overflow as bench_overflow

    bench_overflow.add_parser(benchmarks)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `run MODEL --verbose some words`: the prompt's words may follow options, as with `ollama run`
    if extra and isinstance(getattr(args, "prompt", None), list) and not any(e.startswith("-") for e in extra):
        args.prompt += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        result: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        # the reader went away (`localforge list | head`): what it did not want is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("Stopped." if args.func is cmd_serve else "\nInterrupted.", file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
