"""``hvsa serve``: the annotation web app, a person in the loop."""

from __future__ import annotations

import argparse

from hvsa.cli._common import add_model_arguments, add_threads_argument, finetune_config, positive_int


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help="annotate in the browser: you label the chosen samples, hvsa labels the rest",
        description="Open a local web app on a project folder: label each batch of selected samples"
        " in the browser; hvsa fine-tunes, predicts every frame and selects the next batch in the"
        " background. Stop at any time; the same command resumes where it stopped. Settings of an"
        " existing project are kept.",
    )
    p.add_argument("data", nargs="?", metavar="DATA_OR_VIDEO", help="data folder or video (needed to create the project)")
    p.add_argument("--out", "-o", required=True, metavar="PROJECT", help="project folder (created, or reopened where it stopped)")
    p.add_argument("--classes", metavar="FILE", help="classes.json (needed when DATA has none, e.g. a plain video)")
    p.add_argument("--granularity", "-g", metavar="G", help="sample pool: frame, rec<N>, sp<N> (new project; default frame)")
    p.add_argument("--per-iteration", "-b", type=positive_int, metavar="B", help="samples per batch (default 10, or the project's)")
    p.add_argument("--selector", "-s", default="hvsa", help="hvsa, hvsa-balanced, hvsa-disagree, random, uncertainty or diversity (new project)")
    p.add_argument("--method", default="hvsa", help="labelling method (new project): hvsa, hvsa-fused, hvsa-crf, finetune-only, lp or copy")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (new project; default 0)")
    p.add_argument("--size", help="working size WxH (new project; default: longest side 480)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need the printed token)")
    p.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0 picks a free one)")
    add_model_arguments(p)
    add_threads_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    from hvsa.web.project import Project, open_session
    from hvsa.web.server import listen, serve

    listen(args.host, args.port).close()  # a taken port fails now, before the slow part
    session, per_iteration = open_session(
        args.out, args.data, classes=args.classes, granularity=args.granularity, per_iteration=args.per_iteration,
        size=args.size, seed=args.seed, selector=args.selector, method=args.method, model=args.model,
        finetune=finetune_config(args), device=args.device,
    )
    stopped = True
    try:
        print(f"{args.out}: {session.num_frames} frames {session.hw[1]}x{session.hw[0]}, {len(session.classes)}"
              f" classes, granularity {session.config.granularity}, {per_iteration} samples per batch,"
              f" {session.completed} iteration(s) done")
        project = Project(session, per_iteration)
        project.start()
        try:
            serve(project, host=args.host, port=args.port)
        finally:
            stopped = project.close()
    finally:
        if stopped:  # else the worker still runs a step that cannot stop; the exit ends it
            session.close()
    return 0
