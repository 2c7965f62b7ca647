"""Run the whole CNN-versus-ViT study and publish it as a site and a PDF.

    python run_study.py --quick --data ../shared/data/cifar10-jpeg.tar.xz

Stages, in the order of the report: data, exploration, preprocessing,
Hyperband search, refit and evaluation of each model, then the report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from study.accelerator import SWITCHES
from study.cluster import DEFAULT_ADDRESS, DEFAULT_WORKER_TIMEOUT_S, ROLES, resolve_cluster
from study.config import PRESETS, SPACE_NAMES
from study.config_file import config_listing, read_config_file, resolve_config
from study.pipeline import RESTART_CHOICES, STAGE_CHOICES

PAGE_SIZES = ("A4", "Letter")  # the sizes report.render accepts
from study.stop import stop_on_signals

log = logging.getLogger("run_study")
LOG_NAME = "study.log"


EPILOG = """\
examples:
  python run_study.py --quick --data cifar10-jpeg.tar.xz
  python run_study.py --preset full --config my_study.toml
  python run_study.py --stages exploration          # data and exploration only
  python run_study.py --render-only --page-size Letter

A TOML config file (--config) overrides any setting of the preset by its
dotted name, for example [cnn.refit] max_epochs = 10, or a search space
under [cnn_space] and [vit_space]. Each run stores its resolved config in
RUN_DIR/config.toml, which --config reads back. Options on the command line
override the file, and the defaults above are the presets' values, which a
config file changes.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Tune, train and compare a CNN and a Vision Transformer on an "
                    "image-classification data set, and write the study as a static "
                    "site and a PDF.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset", choices=PRESETS, default=None,
        help="size of the study: 'smoke' (a few hundred images, one or two epochs, for "
             "tests; about a minute), 'quick' (about 13 minutes on a 2-core CPU), 'full' "
             "(searches on 20,000 images and refits on all, for a GPU; many hours on a "
             "CPU). Default: the config file's preset, else quick")
    parser.add_argument("--quick", dest="preset", action="store_const", const="quick",
                        help="short for --preset quick")
    parser.add_argument(
        "--config", default=None, type=Path, metavar="FILE",
        help="TOML file whose values override the preset's settings and search spaces "
             "(see below). Default: none")
    parser.add_argument(
        "--data", default=None, metavar="PATH",
        help="a cifar-10-batches-py folder, cifar-10-python.tar.gz, or a class-folder "
             "tree train/<class>/*, test/<class>/* as a folder or a .tar, .tar.gz, "
             ".tgz or .tar.xz archive. Default: CIFAR-10 from the Keras cache "
             "(~/.keras/datasets), downloaded there when missing (163 MB)")

    parser.add_argument("--out", default="site", type=Path, metavar="DIR",
                        help="folder of the publishable site: index.html, figures/, "
                             "study.pdf, results.json. Default: site (in the current "
                             "directory)")
    parser.add_argument("--force", action="store_true",
                        help="replace --out even when it contains files the report does "
                             "not write (they are deleted; a folder with .git is refused)")
    parser.add_argument("--run-dir", default=None, type=Path, metavar="DIR",
                        help="folder for tuner state, models, study.log, config.toml and "
                             "results.json; a rerun continues from it. Default: "
                             "runs/<preset> (in the current directory)")
    parser.add_argument(
        "--restart", choices=RESTART_CHOICES, default=None, metavar="STAGE",
        help="recompute STAGE and the stages after it instead of reusing them from the run "
             "folder, e.g. after changing its settings: all, exploration, search, refit, "
             "evaluation, seeds (both models), or one model's search_cnn, refit_cnn, "
             "evaluation_cnn, seeds_cnn, search_vit, refit_vit, evaluation_vit, seeds_vit. "
             "Default: reuse every finished stage")
    parser.add_argument(
        "--stages", type=stage_list, default=None, metavar="LIST",
        help="run only these stages (comma-separated names from --list-stages, e.g. "
             "exploration or search,refit_cnn) and the stages they need; finished stages "
             "are reused. The report is rendered only when 'report' is listed. Default: "
             "every stage")
    parser.add_argument("--list-stages", action="store_true",
                        help="list the stages, what each computes and whether the run "
                             "folder has it finished for the current settings, then exit")
    parser.add_argument("--render-only", action="store_true",
                        help="rebuild the site and PDF from the run folder's results.json "
                             "and saved arrays, without loading data or training")
    parser.add_argument("--page-size", choices=PAGE_SIZES, default="A4",
                        help="paper size of the PDF. Default: A4")
    parser.add_argument("--quiet", action="store_true",
                        help="print only warnings, errors and the final summary on the "
                             "terminal; study.log in the run folder still gets every line")
    parser.add_argument("--seed", default=None, type=int, metavar="N",
                        help="random seed for sampling, splits, shuffling and weights. "
                             "Default: the config file's seed, else 42")

    parser.add_argument("--cnn-space", choices=SPACE_NAMES, default=None,
                        help="CNN search space: 'modern' (current practice; in the full "
                             "preset batch norm, residual blocks, global average pooling, "
                             "AdamW or Nesterov SGD with weight decay, warm-up and cosine "
                             "decay, label smoothing; reduced in smaller presets) or "
                             "'original' (the 2024 notebook's space). Default: modern")
    parser.add_argument("--vit-space", choices=SPACE_NAMES, default=None,
                        help="ViT search space: 'modern' (in the full preset small patches, "
                             "a dense or convolutional stem, mean or class-token readout, "
                             "stochastic depth, AdamW with warm-up and cosine decay, label "
                             "smoothing; reduced in smaller presets) or 'original' (the "
                             "notebook's space). Default: modern")
    parser.add_argument("--seeds", type=int, default=None, metavar="K",
                        help="refits of each model's best configuration, with seeds SEED, "
                             "SEED+1, ...: the report gives the mean and standard deviation "
                             "of their test scores. Default: 1 (smoke), 3 (quick), 5 (full)")
    parser.add_argument("--no-flip-tta", dest="flip_tta", action="store_const", const=False,
                        default=None,
                        help="skip the second test pass on mirrored images (flip test-time "
                             "augmentation, reported beside the plain scores). Default: "
                             "flip TTA on")
    parser.add_argument("--mixed-precision", choices=SWITCHES, default=None,
                        help="train in 16-bit floats with float32 weights (bfloat16 when forced "
                             "on a CPU); 'auto' turns it on only when TensorFlow finds a "
                             "GPU. Default: auto")
    parser.add_argument("--xla", choices=SWITCHES, default=None,
                        help="compile training steps with XLA; 'auto' turns it on only when "
                             "TensorFlow finds a GPU. Default: auto")
    parser.add_argument("--search-budget", type=budget_minutes, default=None,
                        metavar="MINUTES",
                        help="wall-clock minutes for each model's Hyperband search; when "
                             "they run out, the running trial stops, no new trial starts "
                             "and the best trial so far is refit. Default: no budget")

    distributed = parser.add_argument_group(
        "distributed search", "one chief and N workers share each Hyperband search through "
        "keras-tuner's gRPC oracle; all use the same options and one shared --run-dir (see "
        "docs/distributed.md). Without --role, keras-tuner's KERASTUNER_TUNER_ID, "
        "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set the role and address")
    distributed.add_argument(
        "--role", choices=ROLES, default=None,
        help="single: one process runs everything; chief: serves the searches, runs no "
             "trial, then refits, evaluates and renders; worker: runs search trials for "
             "the chief, then exits. Default: single")
    distributed.add_argument(
        "--chief-address", default=None, metavar="HOST:PORT",
        help="where the chief listens (use 0.0.0.0:PORT for other machines) and workers "
             "connect; the CNN search uses PORT and the ViT search PORT+1. "
             f"Default: {DEFAULT_ADDRESS} (this machine only)")
    distributed.add_argument(
        "--worker-id", default=None, metavar="ID",
        help="a worker's name (letters, digits, '.', '_', '-'), used in the log and the "
             "ledger. Default: worker-<host>-<process id>")
    distributed.add_argument(
        "--worker-timeout", type=float, default=None, metavar="SECONDS",
        help="the chief declares a worker lost after this many seconds without a word from "
             "it; its trial goes to another worker once, then is marked failed. "
             f"Default: {DEFAULT_WORKER_TIMEOUT_S:g}")

    args = parser.parse_args(argv)
    if args.render_only and args.restart:
        parser.error("--render-only never trains, so --restart has nothing to recompute; "
                     "pass one of them")
    if args.render_only and args.stages:
        parser.error("--render-only only renders the report, so --stages has nothing to "
                     "run; pass one of them")
    return args


def stage_list(text: str) -> list[str]:
    """Parse --stages: comma-separated names from STAGE_CHOICES."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in STAGE_CHOICES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"invalid stage {', '.join(map(repr, unknown)) or repr(text)}: choose from "
            f"{', '.join(STAGE_CHOICES)} (see --list-stages)")
    return names


def with_seed_count(config, count: int):
    """Return `config` with `count` refits per model; raise ValueError unless count >= 1."""
    if count < 1:
        raise ValueError(f"--seeds must be at least 1 (the refit every figure shows), "
                         f"got {count}")
    return dataclasses.replace(config, **{
        name: dataclasses.replace(settings, refit=dataclasses.replace(settings.refit,
                                                                      seeds=count))
        for name, settings in (("cnn", config.cnn), ("vit", config.vit))})


def budget_minutes(text: str) -> float:
    """Parse --search-budget: a positive, finite number of minutes."""
    try:
        minutes = float(text)
    except ValueError:
        minutes = math.nan
    if not (math.isfinite(minutes) and minutes > 0):
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: give the budget as a positive number of minutes, "
            "for example --search-budget 30")
    return minutes


def with_search_budget(config, minutes: float):
    """Return `config` with a wall-clock budget of `minutes` for each model's search."""
    return dataclasses.replace(config, **{
        name: dataclasses.replace(settings, search=dataclasses.replace(
            settings.search, budget_minutes=minutes))
        for name, settings in (("cnn", config.cnn), ("vit", config.vit))})


def setup_logging(run_dir: Path | None, quiet: bool = False, log_name: str = LOG_NAME) -> None:
    """Log to the terminal and, with a run folder, to its study.log.

    With `quiet`, the terminal shows warnings and errors only; study.log
    always gets every line from INFO up.
    """
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.WARNING if quiet else logging.INFO)
    handlers = [terminal]
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        # The file comes first, so a line the terminal shows is already in
        # study.log even when the process is killed right after showing it.
        handlers.insert(0, logging.FileHandler(run_dir / log_name))
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    # WeasyPrint logs every layout step at INFO; only its warnings matter here.
    for noisy in ("weasyprint", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_study_config(args: argparse.Namespace):
    """Resolve the config: preset, then the --config file, then command-line options.

    Raises ValueError (ConfigError for the file) naming the bad value.
    """
    table = read_config_file(args.config) if args.config else {}
    config = resolve_config(table, preset=args.preset, cnn_space=args.cnn_space,
                            vit_space=args.vit_space, source=str(args.config or "config"))
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
        config = dataclasses.replace(config, seed=args.seed)
    if args.flip_tta is not None:
        config = dataclasses.replace(config, evaluation=dataclasses.replace(
            config.evaluation, flip_tta=args.flip_tta))
    accelerator = {key: value for key, value in (("mixed_precision", args.mixed_precision),
                                                 ("xla", args.xla)) if value is not None}
    if accelerator:
        config = dataclasses.replace(config, accelerator=dataclasses.replace(
            config.accelerator, **accelerator))
    if args.seeds is not None:
        config = with_seed_count(config, args.seeds)
    if args.search_budget is not None:
        config = with_search_budget(config, args.search_budget)
    return config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Quiet TensorFlow's C++ start-up banner, because the study's own log reports the stages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        config = build_study_config(args)
        cluster = resolve_cluster(args.role, args.chief_address, args.worker_id,
                                  args.worker_timeout)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.run_dir is None:
        args.run_dir = Path("runs") / config.preset
    if args.list_stages:
        from study.pipeline import stage_table

        print(stage_table(args.run_dir, config))
        return 0
    if args.render_only:
        setup_logging(None, args.quiet)
        return render_only(args)
    try:
        # Workers share the run folder, so each keeps its own log there.
        setup_logging(args.run_dir, args.quiet, log_name=(
            f"study-{cluster.worker_id}.log" if cluster.role == "worker" else LOG_NAME))
    except OSError as err:
        print(f"error: cannot write the run folder {args.run_dir} ({err.strerror or err}); "
              "make it writable or choose another --run-dir", file=sys.stderr)
        return 1
    stored = ("the chief stores its own in {}" if cluster.role == "worker"
              else "stored in {} once the data are checked")
    log.info("resolved config (%s):\n%s", stored.format(args.run_dir / "config.toml"),
             config_listing(config))

    from report.render import OutputFolderError
    from study.config_file import ConfigError
    from study.data import DataError
    from study.pipeline import RunFolderError, run_study

    # Importing TensorFlow prints its C++ start-up lines to file descriptor 2,
    # which neither TF_CPP_MIN_LOG_LEVEL nor logging controls in TF 2.21.
    with native_stderr_to_log(args.quiet):
        from study.search import SearchError, SearchSpaceChanged

    start = time.monotonic()
    site = "no site (a worker)" if cluster.role == "worker" else f"site {args.out}"
    log.info("preset %s, seed %d, run folder %s, %s, %s", config.preset, config.seed,
             args.run_dir, site, cluster.describe())
    try:
        # Schedulers stop jobs with SIGTERM; it ends the run like Ctrl-C does.
        with stop_on_signals():
            results = run_study(config, args.data, args.run_dir, args.out,
                                force_out=args.force, restart=args.restart,
                                stages=args.stages, page_size=args.page_size,
                                cluster=cluster)
    except (DataError, RunFolderError, SearchError, SearchSpaceChanged,
            OutputFolderError) as err:
        log.error("%s", err)
        return 1
    except ConfigError as err:
        log.error("%s", err)
        return 2
    except OSError as err:
        # Raised by a write of the run folder (disk full, permissions); the
        # stages recorded before it stay valid.
        where = f" {err.filename}" if err.filename else ""
        log.error("could not write%s: %s. The stages finished before it are kept in %s; "
                  "free space or fix the permissions, then run the same command again to "
                  "continue", where, err.strerror or err, args.run_dir)
        return 1
    except KeyboardInterrupt as interrupt:
        log.error("interrupted; run the same command again to continue from the finished "
                  "stages, search trials and refit epochs in %s", args.run_dir)
        return 128 + getattr(interrupt, "signum", signal.SIGINT)
    except Exception:
        # Logged, so the traceback reaches study.log as well as the terminal.
        log.exception("the study failed with an unexpected error; the stages finished "
                      "before it are kept in %s", args.run_dir)
        return 1
    if results is None and cluster.role == "worker":
        print(f"worker {cluster.worker_id} finished: both searches in {args.run_dir} have "
              "ended, and the chief does the rest of the study")
        return 0
    if results is None:
        print(f"stages {', '.join(args.stages)} finished in {args.run_dir}; run without "
              "--stages to finish the study and render the report (finished stages are "
              "reused)")
        return 0
    log.info("study finished in %.1f s", time.monotonic() - start)
    for name, model in results["models"].items():
        log.info("%s: test accuracy %.4f, macro AUC %.4f", model["label"],
                 model["test"]["accuracy"], model["roc"]["macro_auc"])
    from report.summary import summary_lines

    summary = "\n".join([*summary_lines(results), f"site: {args.out / 'index.html'}",
                         f"pdf:  {args.out / 'study.pdf'}"])
    print(summary)
    log_to_file(f"summary:\n{summary}")
    return 0


@contextlib.contextmanager
def native_stderr_to_log(active: bool):
    """Send what native code writes to file descriptor 2 into study.log, when `active`.

    Python's own writes to stderr are captured too, so the block must not log
    anything the terminal should show.
    """
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace").strip()
            if text:
                log_to_file(f"start-up output of the imported libraries:\n{text}")


def log_to_file(message: str) -> None:
    """Write `message` to study.log only, for text the terminal gets through print."""
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def render_only(args: argparse.Namespace) -> int:
    """Re-render the report of a finished run; TensorFlow is never imported."""
    from report.render import OutputFolderError, render_report
    from report.run_folder import RunFolderError as ReportRunFolderError

    if not (args.run_dir / "results.json").is_file():
        log.error("no results.json in %s: run the study first, or pass the --run-dir of "
                  "a finished run", args.run_dir)
        return 1
    ignored = [option for option, value in (("--seeds", args.seeds),
                                            ("--search-budget", args.search_budget))
               if value is not None]
    if ignored:
        log.warning("--render-only redraws the results in %s as they are, so %s has no "
                    "effect; drop --render-only to compute with it", args.run_dir,
                    " and ".join(ignored))
    try:
        paths = render_report(args.run_dir, args.out, page_size=args.page_size,
                              force=args.force)
    except (OutputFolderError, ReportRunFolderError) as err:
        log.error("%s", err)
        return 1
    print(f"site: {paths['site']}")
    print(f"pdf:  {paths['pdf']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
