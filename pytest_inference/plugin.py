"""pytest-inference's pytest entry point: options and hooks only.

The work lives elsewhere: :mod:`.claims` judges, :mod:`.session` collects claims and
measurements, :mod:`.fixtures` gives tests their fixtures, :mod:`.hookspec` declares the hooks
the sinks of :mod:`.report` implement, :mod:`.baseline` compares runs. This module imports
only light standard-library code at load time, so
``pytest --help`` stays fast and ``-p no:inference`` removes everything.
"""

from __future__ import annotations

import pytest

from . import session as _session
# fixtures are registered by being module attributes of the plugin (one module per family)
from .fixtures.endpoints import (  # noqa: F401
    inference_client,
    inference_endpoint,
    inference_local,
    serverless_client,
    serverless_endpoint,
)
from .fixtures.node import inference_node, node_snapshot  # noqa: F401
from .fixtures.session import claim, inference_api_key, inference_session, inference_target  # noqa: F401
from .fixtures.storage import inference_netlab, model_storage, storage_reads  # noqa: F401

from .markers import MARKERS, OTHER_MARKERS, READS_MARKER

#: the shipped sinks: hook implementations (hookspec.py) registered under these names (-p no:NAME removes one)
SINKS = {
    "inference-terminal": "pytest_inference.report.terminal",
    "inference-summary-json": "pytest_inference.report.summary",
    "inference-allure": "pytest_inference.report.allure_sink",
    "inference-conformance": "pytest_inference.report.conformance",
}

INCONCLUSIVE_MODES = ("fail", "xfail")


def pytest_addoption(parser: pytest.Parser) -> None:
    from .settings import default_text as _d  # stdlib only: help states the defaults the settings table uses

    group = parser.getgroup("inference", "pytest-inference (claims about LLM-inference infrastructure)")
    group.addoption(
        "--target",
        dest="inference_target",
        metavar="NAME|PATH",
        default=None,
        help="hardware target profile whose thresholds judge the claims: a shipped name "
        "(see --inference-targets) or a path to a .toml profile. Default: ini inference_target, else cpu-local.",
    )
    group.addoption(
        "--inference-targets",
        dest="inference_list_targets",
        action="store_true",
        default=False,
        help="list the shipped target profiles and their claims, then exit.",
    )
    group.addoption(
        "--endpoint",
        dest="inference_endpoint",
        metavar="URL",
        default=None,
        help="OpenAI-compatible base URL to measure, e.g. http://127.0.0.1:8000/v1 (ini inference_endpoint).",
    )
    group.addoption(
        "--model",
        dest="inference_model",
        metavar="NAME",
        default=None,
        help="model name sent in requests. Default: the endpoint's only model from /v1/models, else the target's.",
    )
    group.addoption(
        "--api-key-env",
        dest="inference_api_key_env",
        metavar="VAR",
        default=None,
        help="name of the environment variable holding the endpoint's API key. The key itself is never "
        "accepted on the command line and never written to any report. Precedence: this option, then ini "
        "inference_api_key_env, then $OPENAI_API_KEY if set (for --endpoint only: the embedded local server "
        "never requires it). A key with CR, LF, control or non-Latin-1 characters is refused.",
    )
    group.addoption(
        "--inference-report",
        dest="inference_report",
        metavar="DIR",
        default=None,
        help="folder for summary.json and allure-results (ini inference_report_dir, default reports/).",
    )
    group.addoption(
        "--inference-inconclusive",
        dest="inference_inconclusive",
        choices=INCONCLUSIVE_MODES,
        default=None,
        help="what an inconclusive claim does to its test: fail (default) or xfail. It never passes.",
    )
    group.addoption(
        "--inference-allow-unmeasured",
        dest="inference_allow_unmeasured",
        action="store_true",
        default=False,
        help="exit 0 even when the selected inference tests measured no claim at all (e.g. every one skipped). "
        "By default such a session exits 1 and names the tests and why they measured nothing.",
    )
    group.addoption(
        "--inference-baseline",
        dest="inference_baseline",
        metavar="FILE",
        default=None,
        help="a saved summary.json; a claim that regressed beyond the tolerance fails its test "
        "(latency/seconds: lower is better; tok/s, MB/s: higher is better).",
    )
    group.addoption(
        "--inference-baseline-tolerance",
        dest="inference_baseline_tolerance",
        metavar="PCT",
        default=None,
        help="allowed regression against --inference-baseline, e.g. 10%% (default 10%%).",
    )
    group.addoption(
        "--warm-requests",
        dest="inference_warm_requests",
        type=int,
        metavar="N",
        default=None,
        help=f"streamed requests the warm suite measures, 1 to 100000 (default: {_d('warm_requests')}).",
    )
    group.addoption(
        "--warm-warmup",
        dest="inference_warm_warmup",
        type=int,
        metavar="N",
        default=None,
        help=f"uncounted warm-up requests before the measured ones (default: {_d('warm_warmup')}).",
    )
    group.addoption(
        "--max-tokens",
        dest="inference_max_tokens",
        type=int,
        metavar="N",
        default=None,
        help=f"output tokens asked per request, with ignore_eos (default: {_d('max_tokens')}).",
    )
    group.addoption(
        "--model-path",
        dest="inference_model_path",
        metavar="DIR",
        default=None,
        help="model folder the local server loads (cold-start suite, and the warm suite without --endpoint); "
        "the storage suite inspects the mount that holds it (NFS options) and reads its weight files. "
        "Default: ini inference_model_path, else the tiny model generated into .cache/tiny-llama.",
    )
    group.addoption(
        "--nfs-url",
        dest="inference_nfs_url",
        metavar="URL",
        default=None,
        help="storage suite without a mount: read the weights at nfs://SERVER/EXPORT/PATH with a userspace "
        "NFS client (libnfs), one TCP connection per reader (for unprivileged pods and CI).",
    )
    group.addoption(
        "--nfs-server",
        dest="inference_nfs_server",
        metavar="ADDR",
        default=None,
        help="NFS server whose route the node suite checks (MTU of the interface to it, its connections). "
        "Default: --nfs-url's host, the model mount's addr=, or the local NFS lab's server.",
    )
    group.addoption(
        "--node",
        dest="inference_node",
        metavar="URL",
        default=None,
        help="where the node probes run: local:// (this host), netns://NAME (a network namespace), "
        "kubectl://NAMESPACE/POD (a privileged hostNetwork+hostPID pod on a Kubernetes node) or "
        "recorded://DIR (recorded outputs). Default: the local NFS lab's node when no --nfs-url, "
        "--model-path or --node is given, else local://.",
    )
    group.addoption(
        "--local-nfs",
        dest="inference_local_nfs",
        choices=("tuned", "untuned"),
        default=None,
        help="the embedded local NFS lab (storage and node suites without --nfs-url/--model-path/--node; "
        "root, network namespaces and nfs-ganesha needed): its node tuned (MTU 9000, 16 MiB TCP buffers; "
        "default) or untuned (MTU 1500, default buffers). Host-wide buffer sysctls it changes are restored.",
    )
    group.addoption(
        "--read-readers",
        dest="inference_read_readers",
        type=int,
        metavar="N",
        default=None,
        help="parallel readers of the storage suite's weight read, as a parallel weight loader "
        f"(default: {_d('read_readers')}).",
    )
    group.addoption(
        "--read-rounds",
        dest="inference_read_rounds",
        type=int,
        metavar="N",
        default=None,
        help=f"timed reads of all weight files, page cache excluded before each (default: {_d('read_rounds')}).",
    )
    group.addoption(
        "--server-cmd",
        dest="inference_server_cmd",
        metavar="TEMPLATE",
        default=None,
        help="command that starts the server, with {python} {model_path} {model} {host} {port} {args} {cache_dir} "
        "placeholders, e.g. 'vllm serve {model_path} --port {port}' or a container command "
        "(ini inference_server_cmd; default: vLLM's OpenAI API server module).",
    )
    group.addoption(
        "--server-python",
        dest="inference_server_python",
        metavar="PATH",
        default=None,
        help="python for {python} in --server-cmd (default: .venv-vllm/bin/python of the checkout if present).",
    )
    group.addoption(
        "--server-args",
        dest="inference_server_args",
        metavar="ARGS",
        default=None,
        help="extra server flags for {args}, e.g. '--enforce-eager --max-model-len 512' "
        f"(default: {_d('server_args')}).",
    )
    group.addoption(
        "--cold-runs",
        dest="inference_cold_runs",
        type=int,
        metavar="N",
        default=None,
        help=f"cold starts the coldstart suite measures (default: {_d('cold_runs')}).",
    )
    group.addoption(
        "--cache-state",
        dest="inference_cache_state",
        choices=("fresh", "warm"),
        default=None,
        help="compile cache for cold starts: fresh (truly cold, a new cache per start; default) or warm "
        "(one cache kept across the starts, primed by an uncounted start).",
    )
    group.addoption(
        "--server-start-timeout",
        dest="inference_server_start_timeout",
        type=float,
        metavar="S",
        default=None,
        help=f"seconds a server may take to answer its first token before the start fails (default: {_d('server_start_timeout_s')}).",
    )
    group.addoption(
        "--device",
        dest="inference_device",
        metavar="NAME",
        default=None,
        help="accelerator the local server uses, as a lock key: one server per device at a time, also under "
        "pytest-xdist (default: the target's device, e.g. gpu0, or cpu).",
    )
    group.addoption(
        "--serverless-endpoint",
        dest="inference_serverless_endpoint",
        metavar="URL",
        default=None,
        help="OpenAI-compatible base URL of a serverless (managed) endpoint for the serverless suite "
        "(ini inference_serverless_endpoint; default: the local embedded server, with its API key).",
    )
    group.addoption(
        "--serverless-model",
        dest="inference_serverless_model",
        metavar="NAME",
        default=None,
        help="model name on the serverless endpoint (default: its only model, else --model).",
    )
    group.addoption(
        "--serverless-api-key-env",
        dest="inference_serverless_api_key_env",
        metavar="VAR",
        default=None,
        help="environment variable holding the serverless endpoint's key (never accepted as a value, never reported).",
    )
    group.addoption(
        "--serverless-idle-s",
        dest="inference_serverless_idle_s",
        type=float,
        metavar="S",
        default=None,
        help=f"seconds the serverless endpoint is left idle before the cold probe (default: {_d('serverless_idle_s')}).",
    )
    # --- economics options (pytest_inference.economics; suites/economics) -------------------------
    # Each value is checked as it is parsed: a bad one is a pytest usage error naming the option.
    from .economics import argparse_type as _econ_type

    group.addoption("--gpu-hourly", dest="inference_gpu_hourly", type=_econ_type("gpu_usd_per_hour"), metavar="USD",
                    default=None, help="GPU price in USD per hour for the cost crossover (default: the target's "
                    "[economics] gpu_usd_per_hour, e.g. mi300x 1.88).")
    group.addoption("--price-in", dest="inference_price_in", type=_econ_type("usd_per_m_input"), metavar="USD_PER_1M",
                    default=None, help="serverless price in USD per 1M input tokens (default: the target's usd_per_m_input).")
    group.addoption("--price-out", dest="inference_price_out", type=_econ_type("usd_per_m_output"), metavar="USD_PER_1M",
                    default=None, help="serverless price in USD per 1M output tokens (default: the target's usd_per_m_output).")
    group.addoption("--pricing", dest="inference_pricing", type=_econ_type("pricing_file"), metavar="FILE", default=None,
                    help="TOML or JSON file with gpu_usd_per_hour, usd_per_m_input, usd_per_m_output, input_tokens, "
                    "output_lengths (any subset). Precedence: options > this file > the target's [economics].")
    group.addoption("--input-tokens", dest="inference_input_tokens", type=_econ_type("input_tokens"), metavar="N",
                    default=None, help="input tokens per request for the crossover when this session measured none "
                    "(measured prompt tokens are used when present).")
    group.addoption("--output-lengths", dest="inference_output_lengths", type=_econ_type("output_lengths"),
                    metavar="30,220,1200", default=None, help="response lengths in output tokens: 30,220,1200 "
                    "(short, medium, long; the default) or name=tokens pairs like short=30,long=1200.")
    group.addoption("--capacity-rps", dest="inference_capacity_rps", type=_econ_type("capacity_rps"), metavar="C",
                    default=None, help="requests/s one GPU serves within the SLO, for the crossover: ceil(R / C) GPUs "
                    "at R req/s. A capacity.max_rps_at_slo this session measured wins; else this, else capacity_rps of "
                    "--pricing or the target's [economics]; else one GPU at any rate.")
    # --- end economics options ---------------------------------------------------------------------
    # --- load suite options (pytest_inference/load.py; suites/load) ----------------------------------
    from .load import add_options as _load_options

    _load_options(group)
    # --- API suite options (pytest_inference/api/options.py; suites/api) -----------------------------
    from .api.options import add_options as _api_options

    _api_options(group)
    # --- measuring-engine options (pytest_inference/engine/options.py) ------------------------------
    from .engine.options import add_options as _engine_options

    _engine_options(group)
    parser.addini("inference_serverless_endpoint", "default serverless base URL", default=None)
    parser.addini("inference_model_path", "default model folder for the local server", default=None)
    parser.addini("inference_server_cmd", "default server command template", default=None)
    parser.addini("inference_target", "default hardware target profile (name or path)", default=None)
    parser.addini("inference_endpoint", "default OpenAI-compatible base URL", default=None)
    parser.addini("inference_api_key_env", "default environment variable holding the API key", default=None)
    parser.addini("inference_report_dir", "default report folder", default=None)
    parser.addini("inference_inconclusive", "fail (default) or xfail", default=None)
    # --- Kubernetes suite options (group inference-k8s; pytest_inference/k8s/options.py) ----------
    from .k8s.options import add_options as _k8s_options

    _k8s_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_cmdline_main(config: pytest.Config):
    if config.getoption("inference_list_targets"):
        from .targets import describe_targets

        print(describe_targets(), end="")
        return 0
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for name, text in {**MARKERS, **OTHER_MARKERS}.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if config.getoption("inference_list_targets"):
        return
    try:
        state = _session.InferenceSession.from_config(config)
    except _session.UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_session.SESSION_KEY] = state
    config.pluginmanager.register(state, "inference-session")
    import importlib

    for name, module in SINKS.items():
        if not config.pluginmanager.is_blocked(name) and config.pluginmanager.get_plugin(name) is None:
            config.pluginmanager.register(importlib.import_module(module), name)
    # allure-pytest's folder is defaulted after collection, only when inference tests run (session.py)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(_session.SESSION_KEY, None)
    return state.header_lines() if state else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``inference_reads`` run after every other test (the one ordering this plugin does)."""
    _session.readers_last(items, READS_MARKER)
